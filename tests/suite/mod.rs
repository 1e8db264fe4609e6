mod cli;
mod isolation;
mod llm;
mod one_shot;
