mod cli;
mod gates;
mod isolation;
mod llm;
mod one_shot;
mod queue;
mod slack;
mod tools;
