//! A fake GitHub on loopback: the REST API slipway's GitHub forge uses (via octocrab), and real
//! git smart HTTP (`git http-backend` run as CGI) over a bare repo, so clones, pushes, head SHAs
//! and merges are real git.
//!
//! Response shapes come from `shared/fixtures/github` (see its SOURCES.md); each is the fixture
//! object with its values overwritten, so every field the real API sends is there:
//! - repository: `rest/get-repository.json` (the GET response);
//! - pull request: `webhooks/pull_request_opened.payload.json` `.pull_request`;
//! - label: `rest/add-labels-to-issue.json` (the POST …/labels response items);
//! - issue comment: `webhooks/issue_comment_created.payload.json` `.comment`;
//! - check run: `webhooks/check_run_completed.payload.json` `.check_run`;
//! - combined status: `rest/create-status.json` (the GET …/status response);
//! - branch protection: `rest/branch-protection.json` (404 from the GET, 200 from the PUT that
//!   has `required_status_checks`);
//! - validation errors: `rest/errors.json`'s layout (`message`, `errors`, `documentation_url`).
//!
//! The merge endpoint has no public recording; it answers as GitHub documents it (SOURCES.md).
//!
//! Every request (REST and git) is recorded as a [`Call`], in arrival order, with its path and
//! query percent-decoded (so `slipway/abc` matches whether or not the client encoded the `/`).
//!
//! The server shares the test's runtime: a `#[tokio::test]` (current-thread) must not block on a
//! synchronous `git` command against it; use `tokio::process`, `spawn_blocking` or
//! `flavor = "multi_thread"`. The fake itself runs its git work on the blocking pool.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The personal access token the fake accepts (REST `Bearer`/`token`, git Basic password).
pub const TOKEN: &str = "ghp_faketoken0123456789abcdefABCDEF0123";

/// The git Basic-auth user GitHub documents for token auth.
pub const GIT_USER: &str = "x-access-token";

const REPOSITORY: &str = include_str!("../../../shared/fixtures/github/rest/get-repository.json");
const LABELS: &str = include_str!("../../../shared/fixtures/github/rest/add-labels-to-issue.json");
const STATUS: &str = include_str!("../../../shared/fixtures/github/rest/create-status.json");
const PROTECTION: &str =
    include_str!("../../../shared/fixtures/github/rest/branch-protection.json");
const PULL: &str =
    include_str!("../../../shared/fixtures/github/webhooks/pull_request_opened.payload.json");
const COMMENT: &str =
    include_str!("../../../shared/fixtures/github/webhooks/issue_comment_created.payload.json");
const CHECK_RUN: &str =
    include_str!("../../../shared/fixtures/github/webhooks/check_run_completed.payload.json");

const DOC_REST: &str = "https://docs.github.com/rest";
const DOC_CREATE_PR: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
const DOC_MERGE: &str = "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request";
const DOC_UPDATE_PR: &str = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request";
const DOC_REFS: &str = "https://docs.github.com/rest/git/refs#delete-a-reference";
const DOC_PROTECTION: &str =
    "https://docs.github.com/rest/branches/branch-protection#get-branch-protection";
const DOC_CHECKS: &str =
    "https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference";
const DOC_APPS: &str = "https://docs.github.com/rest/apps/apps";

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// Percent-decoded path, e.g. `/repos/acme/calc/pulls` or `/git/acme/calc.git/info/refs`.
    pub path: String,
    /// Percent-decoded query string (no `?`), e.g. `head=acme:slipway/x&state=all`.
    pub query: String,
    /// The JSON body; `Null` if none or not JSON.
    pub body: Value,
    /// The `Authorization` header, or "".
    pub auth: String,
    /// The status the fake answered.
    pub status: u16,
}

/// What CI reports for a head SHA.
#[derive(Clone, Debug)]
pub enum Ci {
    /// Check runs `build` and `test` succeed.
    Pass,
    /// `build` succeeds and `check` fails with this output.
    Fail {
        check: String,
        summary: String,
        text: String,
    },
    /// Everything is in progress on the first request (per endpoint), then the inner outcome.
    PendingThen(Box<Ci>),
}

/// What `GET …/branches/{b}/protection` answers.
#[derive(Clone, Debug)]
pub enum Protection {
    /// 404 "Branch not protected".
    None,
    /// 403 "Resource not accessible by integration".
    Unreadable,
    /// 200 with these as `required_status_checks.contexts` and `.checks[].context`.
    Required(Vec<String>),
}

/// Handle to a running fake. Cheap to clone.
#[derive(Clone)]
pub struct FakeGithub {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    ctx: Arc<Ctx>,
}

/// What does not change after `start`.
struct Ctx {
    bare: PathBuf,
    owner: String,
    name: String,
    api_url: String,
    /// Fixture objects already pointed at this repo and server.
    repository: Value,
    pull: Value,
    label: Value,
    comment: Value,
    check_run: Value,
    status: Value,
    protected: Value,
    unprotected: Value,
    bot: Value,
}

struct Inner {
    calls: Vec<Call>,
    advisories: Vec<Value>,
    canned: Vec<Canned>,
    ci_queue: VecDeque<Ci>,
    ci: HashMap<String, CiRecord>,
    protection: Protection,
    merge_response: Option<(u16, String)>,
    /// The next merge happens, then answers this status (a 502 after GitHub merged).
    merge_then: Option<u16>,
    /// How long a `PUT …/merge` waits before it answers (after merging, when it merges).
    merge_delay: std::time::Duration,
    mergeable: Option<bool>,
    pulls: Vec<Pr>,
    /// (issue number, comment object).
    comments: Vec<(u64, Value)>,
    label_ids: HashMap<String, u64>,
    next_id: u64,
    app: Option<(u64, u64)>,
    install_tokens: Vec<String>,
}

struct Canned {
    method: String,
    path_contains: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

struct CiRecord {
    outcome: Ci,
    /// Requests so far: [check-runs, status].
    seen: [u32; 2],
    first_id: u64,
}

#[derive(Clone, Copy)]
enum CiEndpoint {
    CheckRuns = 0,
    Status = 1,
}

struct Pr {
    number: u64,
    id: u64,
    title: String,
    body: Option<String>,
    open: bool,
    draft: bool,
    head_ref: String,
    head_sha: String,
    base_ref: String,
    labels: Vec<Value>,
    created_at: String,
    updated_at: String,
    closed_at: Option<String>,
    merged_at: Option<String>,
    merge_commit_sha: Option<String>,
    /// The head SHA whose mergeability GitHub has "computed" (a GET saw it).
    mergeable_for: Option<String>,
}

/// A request, as the handlers see it.
struct Req {
    method: Method,
    path: String,
    raw_query: String,
    headers: HeaderMap,
    body: Bytes,
    json: Value,
    auth: String,
}

/// A response, before it becomes an axum one.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl FakeGithub {
    /// Serves `owner/name` backed by the bare git repo at `bare` (which must have `main`).
    pub async fn start(bare: &Path, owner: &str, name: &str) -> FakeGithub {
        let bare = std::fs::canonicalize(bare).unwrap();
        assert!(
            git(&bare, &["rev-parse", "--verify", "-q", "refs/heads/main"]).is_ok(),
            "{} must be a bare repo with a `main` branch",
            bare.display()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeGithub {
            addr,
            inner: Arc::new(Mutex::new(Inner::new())),
            ctx: Arc::new(Ctx::new(bare, owner, name, format!("http://{addr}"))),
        };
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the REST base URL.
    pub fn api_url(&self) -> String {
        self.ctx.api_url.clone()
    }

    /// `http://127.0.0.1:PORT/git/OWNER/NAME.git`
    pub fn clone_url(&self) -> String {
        self.ctx.clone_url()
    }

    /// Every REST and git request, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// REST requests only (not `/git/…`).
    pub fn api_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| !c.path.starts_with("/git/"))
            .collect()
    }

    /// The next request with this method whose path contains `path_contains` gets this answer
    /// instead (one-shot; several queued for the same request are used in order).
    pub fn fail_next(
        &self,
        method: &str,
        path_contains: &str,
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    ) {
        self.lock().canned.push(Canned {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            status,
            headers,
            body,
        });
    }

    /// Queues a CI outcome: each new head SHA of a `slipway/…` pull takes the next one when CI
    /// is first asked about it (check runs or status). Empty queue: `Ci::Pass`.
    pub fn push_ci(&self, outcome: Ci) {
        self.lock().ci_queue.push_back(outcome);
    }

    /// Serves `advisory` (a global advisory document) at `GET /advisories/{its ghsa_id}`.
    pub fn add_advisory(&self, advisory: Value) {
        self.lock().advisories.push(advisory);
    }

    /// What branch protection reads answer (default `Protection::None`).
    pub fn set_protection(&self, p: Protection) {
        self.lock().protection = p;
    }

    /// The next `PUT …/merge` merges, then answers `status` instead of 200 (one-shot): the
    /// answer is lost, the merge is not.
    pub fn merge_then_answer(&self, status: u16) {
        self.lock().merge_then = Some(status);
    }

    /// The next `PUT …/merge` answers `status` with `{"message": message, …}` (one-shot).
    pub fn set_merge_response(&self, status: u16, message: &str) {
        self.lock().merge_response = Some((status, message.to_string()));
    }

    /// Every `PUT …/merge` waits `delay` before it answers (after merging, when it merges):
    /// a window in which GitHub has merged and the client does not know it yet.
    pub fn set_merge_delay(&self, delay: std::time::Duration) {
        self.lock().merge_delay = delay;
    }

    /// Pulls GitHub merged (whatever the merge call answered), by number.
    pub fn merged_pulls(&self) -> Vec<u64> {
        self.lock()
            .pulls
            .iter()
            .filter(|p| p.merged_at.is_some())
            .map(|p| p.number)
            .collect()
    }

    /// What `mergeable` reports once computed (default `Some(true)`). The first GET of a pull
    /// after its head changed always reports `null` / `"unknown"`. `Some(false)` also makes
    /// merges answer 405.
    pub fn set_mergeable(&self, v: Option<bool>) {
        self.lock().mergeable = v;
    }

    /// The current pull objects, by number (rendering does not count as a GET).
    pub fn pulls(&self) -> Vec<Value> {
        let mut i = self.lock();
        let mergeable = i.mergeable;
        i.pulls
            .iter_mut()
            .map(|pr| {
                self.refresh_head(pr);
                self.render_pull(pr, mergeable)
            })
            .collect()
    }

    /// Bodies of the comments on issue/pull `number`, oldest first.
    pub fn comments(&self, number: u64) -> Vec<String> {
        self.lock()
            .comments
            .iter()
            .filter(|(n, _)| *n == number)
            .map(|(_, c)| str_of(c, "body"))
            .collect()
    }

    /// The tip of `branch` in the bare repo.
    pub fn ref_sha(&self, branch: &str) -> Option<String> {
        self.ctx.tip(branch)
    }

    /// Turns on the GitHub App endpoints: `GET /repos/{o}/{r}/installation` and
    /// `POST /app/installations/{id}/access_tokens` (JWT auth, `iss` = `app_id`). Minted
    /// installation tokens are accepted for REST and git from then on.
    pub fn enable_app(&self, app_id: u64, installation_id: u64) {
        self.lock().app = Some((app_id, installation_id));
    }

    /// Installation tokens minted so far.
    pub fn installation_tokens(&self) -> Vec<String> {
        self.lock().install_tokens.clone()
    }

    // ---- request plumbing --------------------------------------------------------------

    /// Records the call (the one place that does), then answers: canned reply, git, or REST.
    async fn serve(self, req: Req) -> Reply {
        let is_merge = req.method == Method::PUT && req.path.ends_with("/merge");
        let (index, canned) = {
            let mut i = self.lock();
            i.calls.push(Call {
                method: req.method.to_string(),
                path: req.path.clone(),
                query: decode(&req.raw_query),
                body: req.json.clone(),
                auth: req.auth.clone(),
                status: 0,
            });
            (i.calls.len() - 1, i.take_canned(&req))
        };
        let reply = match canned {
            Some(r) => r,
            None if req.path.starts_with("/git/") => self.git_http(&req).await,
            None => {
                let me = self.clone();
                tokio::task::spawn_blocking(move || me.rest(&req))
                    .await
                    .unwrap()
            }
        };
        if is_merge {
            let delay = self.lock().merge_delay;
            tokio::time::sleep(delay).await;
        }
        self.lock().calls[index].status = reply.status;
        reply
    }

    fn token_ok(&self, i: &Inner, token: &str) -> bool {
        token == TOKEN || i.install_tokens.iter().any(|t| t == token)
    }

    /// `Bearer T` / `token T` with an accepted token.
    fn rest_authorized(&self, i: &Inner, auth: &str) -> bool {
        auth.strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("token "))
            .is_some_and(|t| self.token_ok(i, t.trim()))
    }

    /// `Basic base64("x-access-token:" + T)` with an accepted token.
    fn git_authorized(&self, auth: &str) -> bool {
        let Some(creds) = auth
            .strip_prefix("Basic ")
            .and_then(|b| base64_decode(b.trim()))
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return false;
        };
        match creds.split_once(':') {
            Some((GIT_USER, token)) => self.token_ok(&self.lock(), token),
            _ => false,
        }
    }

    // ---- REST --------------------------------------------------------------------------

    fn rest(&self, req: &Req) -> Reply {
        let mut i = self.lock();
        let segs: Vec<String> = req.path.trim_matches('/').split('/').map(decode).collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let m = req.method.as_str();
        // App endpoints authenticate with a JWT, not a token.
        match (m, segs.as_slice()) {
            ("GET", ["repos", o, r, "installation"]) if self.ctx.is_repo(o, r) => {
                return self.installation(&i, &req.auth);
            }
            ("POST", ["app", "installations", id, "access_tokens"]) => {
                return self.mint_token(&mut i, &req.auth, id);
            }
            _ => {}
        }
        if !self.rest_authorized(&i, &req.auth) {
            return Reply::error(401, "Bad credentials", DOC_REST);
        }
        // REST API "Global security advisories": GET /advisories/{ghsa_id}.
        if let ("GET", ["advisories", id]) = (m, segs.as_slice()) {
            return match i.advisories.iter().find(|a| a["ghsa_id"] == *id) {
                Some(a) => Reply::json(200, a.clone()),
                None => Reply::not_found(),
            };
        }
        let ["repos", o, r, rest @ ..] = segs.as_slice() else {
            return Reply::not_found();
        };
        if !self.ctx.is_repo(o, r) {
            return Reply::not_found();
        }
        let params = query_params(&req.raw_query);
        let body = &req.json;
        match (m, rest) {
            ("GET", []) => Reply::json(200, self.ctx.repository.clone()),
            ("GET", ["pulls"]) => self.list_pulls(&mut i, &params),
            ("POST", ["pulls"]) => self.create_pull(&mut i, body),
            ("GET", ["pulls", n]) => self.with_pull(&mut i, n, |me, i, ix| me.get_pull(i, ix)),
            ("PATCH", ["pulls", n]) => {
                self.with_pull(&mut i, n, |me, i, ix| me.update_pull(i, ix, body))
            }
            ("PUT", ["pulls", n, "merge"]) => {
                self.with_pull(&mut i, n, |me, i, ix| me.merge_pull(i, ix, body))
            }
            ("POST", ["issues", n, "labels"]) => {
                self.with_pull(&mut i, n, |me, i, ix| me.add_labels(i, ix, body))
            }
            ("GET", ["issues", n, "labels"]) => self.with_pull(&mut i, n, |_, i, ix| {
                Reply::json(200, Value::Array(i.pulls[ix].labels.clone()))
            }),
            ("POST", ["issues", n, "comments"]) => {
                self.with_pull(&mut i, n, |me, i, ix| me.add_comment(i, ix, body))
            }
            ("GET", ["issues", n, "comments"]) => self.with_pull(&mut i, n, |_, i, ix| {
                let number = i.pulls[ix].number;
                let list = i.comments.iter().filter(|(k, _)| *k == number);
                Reply::json(200, list.map(|(_, c)| c.clone()).collect())
            }),
            ("DELETE", ["git", "refs", "heads", branch @ ..]) if !branch.is_empty() => {
                self.delete_branch(&branch.join("/"))
            }
            ("GET", ["branches", branch @ .., "protection"]) if !branch.is_empty() => {
                self.protection(&i, &branch.join("/"))
            }
            // `{ref}` is a SHA, a branch, or `heads/…` (as octocrab sends it).
            ("GET", ["commits", reference @ .., "check-runs"]) if !reference.is_empty() => {
                self.check_runs(&mut i, &reference.join("/"))
            }
            ("GET", ["commits", reference @ .., "status"]) if !reference.is_empty() => {
                self.combined_status(&mut i, &reference.join("/"))
            }
            ("GET", ["check-runs", _, "annotations"]) => Reply::json(200, json!([])),
            _ => Reply::not_found(),
        }
    }

    /// Runs `f` on pull `n`'s index, after re-reading its head; 404 if there is none.
    fn with_pull(
        &self,
        i: &mut Inner,
        n: &str,
        f: impl FnOnce(&Self, &mut Inner, usize) -> Reply,
    ) -> Reply {
        let Some(ix) = n
            .parse::<u64>()
            .ok()
            .and_then(|n| i.pulls.iter().position(|p| p.number == n))
        else {
            return Reply::not_found();
        };
        self.refresh_head(&mut i.pulls[ix]);
        f(self, i, ix)
    }

    fn list_pulls(&self, i: &mut Inner, params: &HashMap<String, String>) -> Reply {
        let state = params.get("state").map_or("open", String::as_str);
        let head = params.get("head").map(|h| match h.split_once(':') {
            Some((owner, branch)) if owner.eq_ignore_ascii_case(&self.ctx.owner) => {
                Some(branch.to_string())
            }
            Some(_) => None,
            None => Some(h.clone()),
        });
        let base = params.get("base");
        let per_page: usize = params
            .get("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(30);
        let page: usize = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let mergeable = i.mergeable;
        let mut out = Vec::new();
        // Newest first, as GitHub sorts by default.
        for pr in i.pulls.iter_mut().rev() {
            let state_ok = match state {
                "all" => true,
                "closed" => !pr.open,
                _ => pr.open,
            };
            let head_ok = match &head {
                Some(Some(b)) => *b == pr.head_ref,
                Some(None) => false,
                None => true,
            };
            if state_ok && head_ok && base.is_none_or(|b| *b == pr.base_ref) {
                self.refresh_head(pr);
                out.push(self.render_pull(pr, mergeable));
            }
        }
        let out: Vec<Value> = out
            .into_iter()
            .skip(per_page * page.saturating_sub(1))
            .take(per_page)
            .collect();
        Reply::json(200, Value::Array(out))
    }

    fn create_pull(&self, i: &mut Inner, body: &Value) -> Reply {
        let (title, head, base) = (
            str_of(body, "title"),
            str_of(body, "head"),
            str_of(body, "base"),
        );
        let head = match head.split_once(':') {
            Some((owner, branch)) if owner.eq_ignore_ascii_case(&self.ctx.owner) => branch.into(),
            Some(_) => String::new(),
            None => head,
        };
        if title.is_empty() {
            return Reply::invalid(
                json!({"resource": "PullRequest", "code": "missing_field", "field": "title"}),
                DOC_CREATE_PR,
            );
        }
        let Some(head_sha) = self.ctx.tip(&head) else {
            return Reply::invalid(
                json!({"resource": "PullRequest", "field": "head", "code": "invalid"}),
                DOC_CREATE_PR,
            );
        };
        let Some(base_sha) = self.ctx.tip(&base) else {
            return Reply::invalid(
                json!({"resource": "PullRequest", "field": "base", "code": "invalid"}),
                DOC_CREATE_PR,
            );
        };
        if i.pulls.iter().any(|p| p.open && p.head_ref == head) {
            let message = format!(
                "A pull request already exists for {}:{head}.",
                self.ctx.owner
            );
            return Reply::invalid(
                json!({"resource": "PullRequest", "code": "custom", "message": message}),
                DOC_CREATE_PR,
            );
        }
        if head_sha == base_sha || self.ctx.is_ancestor(&head_sha, &base_sha) {
            let message = format!("No commits between {base} and {head}");
            return Reply::invalid(
                json!({"resource": "PullRequest", "code": "custom", "message": message}),
                DOC_CREATE_PR,
            );
        }
        let now = now_rfc3339();
        let pr = Pr {
            number: i.pulls.len() as u64 + 1,
            id: i.id(),
            title,
            body: body.get("body").and_then(Value::as_str).map(String::from),
            open: true,
            draft: body.get("draft").and_then(Value::as_bool).unwrap_or(false),
            head_ref: head,
            head_sha,
            base_ref: base,
            labels: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            closed_at: None,
            merged_at: None,
            merge_commit_sha: None,
            mergeable_for: None,
        };
        let v = self.render_pull(&pr, i.mergeable);
        i.pulls.push(pr);
        Reply::json(201, v)
    }

    /// Like GitHub, the first GET after the head changed reports `mergeable: null` and starts
    /// "computing" it; later GETs report the configured value.
    fn get_pull(&self, i: &mut Inner, ix: usize) -> Reply {
        let mergeable = i.mergeable;
        let pr = &mut i.pulls[ix];
        let v = self.render_pull(pr, mergeable);
        pr.mergeable_for = Some(pr.head_sha.clone());
        Reply::json(200, v)
    }

    fn update_pull(&self, i: &mut Inner, ix: usize, body: &Value) -> Reply {
        let pr = &mut i.pulls[ix];
        if let Some(t) = body.get("title").and_then(Value::as_str) {
            pr.title = t.to_string();
        }
        if let Some(b) = body.get("body") {
            pr.body = b.as_str().map(String::from);
        }
        if let Some(b) = body.get("base").and_then(Value::as_str) {
            pr.base_ref = b.to_string();
        }
        match body.get("state").and_then(Value::as_str) {
            Some("closed") if pr.open => {
                pr.open = false;
                pr.closed_at = Some(now_rfc3339());
            }
            Some("open") if !pr.open => {
                if pr.merged_at.is_some() {
                    return Reply::invalid(
                        json!({"resource": "PullRequest", "code": "custom", "message": "state cannot be changed. The pull request cannot be reopened."}),
                        DOC_UPDATE_PR,
                    );
                }
                pr.open = true;
                pr.closed_at = None;
            }
            _ => {}
        }
        pr.updated_at = now_rfc3339();
        let mergeable = i.mergeable;
        Reply::json(200, self.render_pull(&i.pulls[ix], mergeable))
    }

    fn merge_pull(&self, i: &mut Inner, ix: usize, body: &Value) -> Reply {
        if let Some((status, message)) = i.merge_response.take() {
            return Reply::error(status, &message, DOC_MERGE);
        }
        let not_mergeable = || Reply::error(405, "Pull Request is not mergeable", DOC_MERGE);
        let pr = &i.pulls[ix];
        if !pr.open || i.mergeable == Some(false) {
            return not_mergeable();
        }
        if let Some(sha) = body.get("sha").and_then(Value::as_str)
            && sha != pr.head_sha
        {
            return Reply::error(
                409,
                "Head branch was modified. Review and try the merge again.",
                DOC_MERGE,
            );
        }
        let method = body
            .get("merge_method")
            .and_then(Value::as_str)
            .unwrap_or("merge");
        if !["merge", "squash", "rebase"].contains(&method) {
            return Reply::invalid(
                json!({"resource": "PullRequest", "code": "invalid", "field": "merge_method"}),
                DOC_MERGE,
            );
        }
        let title = match body.get("commit_title").and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None if method == "squash" => format!("{} (#{})", pr.title, pr.number),
            None => format!(
                "Merge pull request #{} from {}/{}",
                pr.number, self.ctx.owner, pr.head_ref
            ),
        };
        let message = match body.get("commit_message").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None if method == "merge" => pr.title.clone(),
            None => String::new(),
        };
        let sha = match self
            .ctx
            .merge(&pr.head_ref, &pr.base_ref, method, &title, &message)
        {
            Ok(sha) => sha,
            Err(MergeError::Conflict(e)) => {
                eprintln!("fake_github: merge of #{} failed: {e}", pr.number);
                return not_mergeable();
            }
            Err(MergeError::Git(e)) => return Reply::error(500, &e, DOC_MERGE),
        };
        let now = now_rfc3339();
        let pr = &mut i.pulls[ix];
        pr.open = false;
        pr.closed_at = Some(now.clone());
        pr.merged_at = Some(now.clone());
        pr.updated_at = now;
        pr.merge_commit_sha = Some(sha.clone());
        if let Some(status) = i.merge_then.take() {
            return Reply::error(status, "Server Error", DOC_MERGE);
        }
        Reply::json(
            200,
            json!({"sha": sha, "merged": true, "message": "Pull Request successfully merged"}),
        )
    }

    fn add_labels(&self, i: &mut Inner, ix: usize, body: &Value) -> Reply {
        let names = body.get("labels").unwrap_or(body);
        let Some(names) = names.as_array() else {
            return Reply::invalid(
                json!({"resource": "Label", "code": "invalid", "field": "labels"}),
                DOC_REST,
            );
        };
        for name in names.iter().filter_map(Value::as_str) {
            if i.pulls[ix].labels.iter().any(|l| str_of(l, "name") == name) {
                continue;
            }
            let next = i.next_id + 1;
            let id = *i.label_ids.entry(name.to_string()).or_insert(next);
            i.next_id = i.next_id.max(id);
            let label = self.ctx.label(name, id);
            i.pulls[ix].labels.push(label);
        }
        Reply::json(200, Value::Array(i.pulls[ix].labels.clone()))
    }

    fn add_comment(&self, i: &mut Inner, ix: usize, body: &Value) -> Reply {
        let Some(text) = body.get("body").and_then(Value::as_str) else {
            return Reply::invalid(
                json!({"resource": "IssueComment", "code": "missing_field", "field": "body"}),
                DOC_REST,
            );
        };
        let (id, number) = (i.id(), i.pulls[ix].number);
        let c = self.ctx.comment(number, id, text);
        i.comments.push((number, c.clone()));
        Reply::json(201, c)
    }

    fn delete_branch(&self, branch: &str) -> Reply {
        let reference = format!("refs/heads/{branch}");
        if self.ctx.tip(branch).is_none()
            || git(&self.ctx.bare, &["update-ref", "-d", &reference]).is_err()
        {
            return Reply::error(422, "Reference does not exist", DOC_REFS);
        }
        Reply::empty(204)
    }

    fn protection(&self, i: &Inner, branch: &str) -> Reply {
        if self.ctx.tip(branch).is_none() {
            return Reply::error(404, "Branch not found", DOC_PROTECTION);
        }
        match &i.protection {
            Protection::None => Reply::json(404, self.ctx.unprotected.clone()),
            Protection::Unreadable => Reply::error(
                403,
                "Resource not accessible by integration",
                DOC_PROTECTION,
            ),
            Protection::Required(checks) => {
                let mut v = self.ctx.protected.clone();
                rewrite(
                    &mut v,
                    &[("/branches/main/", &format!("/branches/{branch}/"))],
                );
                v["required_status_checks"]["contexts"] = json!(checks);
                v["required_status_checks"]["checks"] = checks
                    .iter()
                    .map(|c| json!({"context": c, "app_id": null}))
                    .collect();
                Reply::json(200, v)
            }
        }
    }

    fn check_runs(&self, i: &mut Inner, reference: &str) -> Reply {
        let Some(sha) = self.ctx.commit(reference) else {
            return Reply::error(
                422,
                &format!("No commit found for SHA: {reference}"),
                DOC_CHECKS,
            );
        };
        let (pending, outcome, first_id) = self.ci_view(i, &sha, CiEndpoint::CheckRuns);
        let runs: Vec<(&str, Option<&str>, Value)> = match &outcome {
            Ci::Fail {
                check,
                summary,
                text,
            } => {
                let fail_out =
                    json!({"title": format!("{check} failed"), "summary": summary, "text": text});
                let mut v = vec![(check.as_str(), Some("failure"), fail_out)];
                if check != "build" {
                    v.insert(0, ("build", Some("success"), passed_output("build")));
                }
                v
            }
            _ => vec![
                ("build", Some("success"), passed_output("build")),
                ("test", Some("success"), passed_output("test")),
            ],
        };
        let runs: Vec<Value> = runs
            .into_iter()
            .enumerate()
            .map(|(k, (name, conclusion, output))| {
                let id = first_id + k as u64;
                if pending {
                    let output = json!({"title": null, "summary": null, "text": null});
                    self.ctx.check_run(id, &sha, name, None, output)
                } else {
                    self.ctx.check_run(id, &sha, name, conclusion, output)
                }
            })
            .collect();
        Reply::json(200, json!({"total_count": runs.len(), "check_runs": runs}))
    }

    fn combined_status(&self, i: &mut Inner, reference: &str) -> Reply {
        let Some(sha) = self.ctx.commit(reference) else {
            return Reply::error(
                422,
                &format!("No commit found for SHA: {reference}"),
                DOC_CHECKS,
            );
        };
        let (pending, outcome, first_id) = self.ci_view(i, &sha, CiEndpoint::Status);
        let (state, description) = match &outcome {
            _ if pending => ("pending", "Legacy CI is running".to_string()),
            Ci::Fail { check, summary, .. } if check == "ci/legacy" => ("failure", summary.clone()),
            _ => ("success", "Legacy CI passed".to_string()),
        };
        Reply::json(
            200,
            self.ctx
                .combined_status(&sha, state, &description, first_id + 9),
        )
    }

    /// The CI outcome for `sha` as `endpoint` sees it now: (pending, settled outcome, first
    /// check-run id). Takes the next queued outcome on first sight of a `slipway/` pull head.
    fn ci_view(&self, i: &mut Inner, sha: &str, endpoint: CiEndpoint) -> (bool, Ci, u64) {
        if !i.ci.contains_key(sha) {
            let is_pull_head = i.pulls.iter().any(|p| {
                p.head_ref.starts_with("slipway/")
                    && (p.head_sha == sha || self.ctx.tip(&p.head_ref).as_deref() == Some(sha))
            });
            let first_id = i.id() * 100;
            if !is_pull_head {
                return (false, Ci::Pass, first_id);
            }
            let outcome = i.ci_queue.pop_front().unwrap_or(Ci::Pass);
            let record = CiRecord {
                outcome,
                seen: [0, 0],
                first_id,
            };
            i.ci.insert(sha.to_string(), record);
        }
        let r = i.ci.get_mut(sha).unwrap();
        let n = r.seen[endpoint as usize];
        r.seen[endpoint as usize] += 1;
        let (pending, settled) = resolve_ci(&r.outcome, n);
        (pending, settled.clone(), r.first_id)
    }

    // ---- GitHub App --------------------------------------------------------------------

    /// Checks a JWT `Bearer` for the enabled app: 3 base64url parts, `iss` = app id, `exp` ahead.
    fn jwt_ok(&self, auth: &str, app_id: u64) -> bool {
        let Some(jwt) = auth.strip_prefix("Bearer ") else {
            return false;
        };
        let parts: Vec<&str> = jwt.trim().split('.').collect();
        let [_, payload, _] = parts.as_slice() else {
            return false;
        };
        let Some(claims) =
            base64_decode(payload).and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            return false;
        };
        let iss_ok = match &claims["iss"] {
            Value::Number(n) => n.as_u64() == Some(app_id),
            Value::String(s) => s == &app_id.to_string(),
            _ => false,
        };
        let exp_ok = claims["exp"].as_u64().is_some_and(|e| e > now_secs());
        iss_ok && exp_ok
    }

    fn installation(&self, i: &Inner, auth: &str) -> Reply {
        let Some((app_id, installation_id)) = i.app else {
            return Reply::not_found();
        };
        if !self.jwt_ok(auth, app_id) {
            return Reply::error(401, "A JSON web token could not be decoded", DOC_APPS);
        }
        let (api, owner) = (&self.ctx.api_url, &self.ctx.owner);
        let account = self.ctx.repository["owner"].clone();
        Reply::json(
            200,
            json!({
                "id": installation_id,
                "account": account,
                "access_tokens_url": format!("{api}/app/installations/{installation_id}/access_tokens"),
                "repositories_url": format!("{api}/installation/repositories"),
                "html_url": format!("https://github.com/organizations/{owner}/settings/installations/{installation_id}"),
                "app_id": app_id,
                "app_slug": "slipway",
                "target_id": account["id"],
                "target_type": account["type"],
                "permissions": {"checks": "read", "contents": "write", "issues": "write", "metadata": "read", "pull_requests": "write", "statuses": "read"},
                "events": [],
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
                "single_file_name": null,
                "has_multiple_single_files": false,
                "single_file_paths": [],
                "repository_selection": "all",
                "suspended_by": null,
                "suspended_at": null
            }),
        )
    }

    fn mint_token(&self, i: &mut Inner, auth: &str, id: &str) -> Reply {
        let Some((app_id, installation_id)) = i.app else {
            return Reply::not_found();
        };
        if !self.jwt_ok(auth, app_id) {
            return Reply::error(401, "A JSON web token could not be decoded", DOC_APPS);
        }
        if id != installation_id.to_string() {
            return Reply::not_found();
        }
        let token = format!("ghs_installtoken{}", i.install_tokens.len() + 1);
        i.install_tokens.push(token.clone());
        Reply::json(
            201,
            json!({
                "token": token,
                "expires_at": rfc3339(now_secs() + 3600),
                "permissions": {"checks": "read", "contents": "write", "issues": "write", "metadata": "read", "pull_requests": "write", "statuses": "read"},
                "repository_selection": "all"
            }),
        )
    }

    // ---- pulls -------------------------------------------------------------------------

    /// Re-reads the head SHA from the bare repo (kept if the branch is gone).
    fn refresh_head(&self, pr: &mut Pr) {
        if let Some(sha) = self.ctx.tip(&pr.head_ref) {
            pr.head_sha = sha;
        }
    }

    /// The pull as JSON. `mergeable` is the configured value; it shows only once a GET has
    /// "computed" it for the current head (see `get_pull`).
    fn render_pull(&self, pr: &Pr, mergeable: Option<bool>) -> Value {
        let computed = pr.mergeable_for.as_deref() == Some(pr.head_sha.as_str());
        let mergeable = if pr.open && computed { mergeable } else { None };
        let base_sha = self.ctx.tip(&pr.base_ref).unwrap_or_default();
        self.ctx.pull(pr, mergeable, &base_sha)
    }

    // ---- git smart HTTP ----------------------------------------------------------------

    /// `git http-backend` as CGI over the bare repo.
    async fn git_http(&self, req: &Req) -> Reply {
        let prefix = format!("/git/{}/{}.git/", self.ctx.owner, self.ctx.name);
        let Some(rest) = req.path.strip_prefix(&prefix) else {
            return Reply::text(404, "Repository not found.\n");
        };
        if !self.git_authorized(&req.auth) {
            let mut r = Reply::text(401, "Invalid username or token.\n");
            r.headers
                .push(("www-authenticate".into(), "Basic realm=\"GitHub\"".into()));
            return r;
        }
        let (Some(root), Some(dir)) = (self.ctx.bare.parent(), self.ctx.bare.file_name()) else {
            return Reply::text(500, "bad bare repo path\n");
        };
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", format!("/{}/{rest}", dir.to_string_lossy()))
            .env("QUERY_STRING", &req.raw_query)
            .env("REQUEST_METHOD", req.method.as_str())
            .env("CONTENT_TYPE", header("content-type"))
            .env("REMOTE_USER", GIT_USER)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.receivepack")
            .env("GIT_CONFIG_VALUE_0", "true")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if req.method == Method::POST {
            cmd.env("CONTENT_LENGTH", req.body.len().to_string());
        }
        // Large pushes arrive gzipped; http-backend inflates them itself.
        for (h, var) in [
            ("content-encoding", "HTTP_CONTENT_ENCODING"),
            ("git-protocol", "HTTP_GIT_PROTOCOL"),
        ] {
            if !header(h).is_empty() {
                cmd.env(var, header(h));
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Reply::text(500, &format!("git http-backend: {e}\n")),
        };
        let mut stdin = child.stdin.take();
        let body = req.body.clone();
        let writer = tokio::spawn(async move {
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(&body).await;
            }
        });
        let out = child.wait_with_output().await;
        let _ = writer.await;
        match out {
            Ok(out) if !out.stdout.is_empty() => parse_cgi(&out.stdout),
            Ok(out) => Reply::text(500, &String::from_utf8_lossy(&out.stderr)),
            Err(e) => Reply::text(500, &format!("git http-backend: {e}\n")),
        }
    }
}

/// The router's only handler.
async fn handle(
    State(fake): State<FakeGithub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let req = Req {
        method,
        path: decode(uri.path()),
        raw_query: uri.query().unwrap_or("").to_string(),
        headers,
        body,
        json,
        auth,
    };
    fake.serve(req).await.into_response()
}

impl Inner {
    fn new() -> Self {
        Self {
            calls: Vec::new(),
            advisories: Vec::new(),
            canned: Vec::new(),
            ci_queue: VecDeque::new(),
            ci: HashMap::new(),
            protection: Protection::None,
            merge_response: None,
            merge_then: None,
            merge_delay: std::time::Duration::ZERO,
            mergeable: Some(true),
            pulls: Vec::new(),
            comments: Vec::new(),
            label_ids: HashMap::new(),
            next_id: 1000,
            app: None,
            install_tokens: Vec::new(),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn take_canned(&mut self, req: &Req) -> Option<Reply> {
        let ix = self.canned.iter().position(|c| {
            c.method.eq_ignore_ascii_case(req.method.as_str())
                && req.path.contains(&c.path_contains)
        })?;
        let c = self.canned.remove(ix);
        let mut r = if c.body.is_null() {
            Reply::empty(c.status)
        } else {
            Reply::json(c.status, c.body)
        };
        r.headers.extend(c.headers);
        Some(r)
    }
}

impl Ctx {
    fn new(bare: PathBuf, owner: &str, name: &str, api_url: String) -> Self {
        let full = format!("{owner}/{name}");
        let fixture = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
        let recorded = |text: &str, method: &str, path_end: &str, has: &str| -> Value {
            let list = fixture(text);
            let hit = list.as_array().unwrap().iter().find(|e| {
                str_of(e, "method") == method
                    && str_of(e, "path").ends_with(path_end)
                    && (has.is_empty() || e["response"].get(has).is_some())
            });
            hit.unwrap()["response"].clone()
        };
        let api = api_url.as_str();

        let mut repository = recorded(REPOSITORY, "get", "/hello-world", "");
        rewrite(
            &mut repository,
            &[
                ("https://api.github.com", api),
                ("octokit-fixture-org/hello-world", &full),
                ("octokit-fixture-org", owner),
            ],
        );
        repository["name"] = json!(name);
        repository["full_name"] = json!(full);
        repository["owner"]["login"] = json!(owner);
        repository["organization"]["login"] = json!(owner);
        repository["clone_url"] = json!(format!("{api}/git/{full}.git"));
        repository["default_branch"] = json!("main");
        for k in [
            "allow_squash_merge",
            "allow_merge_commit",
            "allow_rebase_merge",
        ] {
            repository[k] = json!(true);
        }
        repository["delete_branch_on_merge"] = json!(false);

        let from_hook = |text: &str, key: &str| -> Value {
            let mut v = fixture(text)[key].clone();
            rewrite(
                &mut v,
                &[
                    ("https://api.github.com", api),
                    ("Codertocat/Hello-World", &full),
                    ("Codertocat", owner),
                ],
            );
            v
        };
        let mut bot = fixture(COMMENT)["comment"]["user"].clone();
        rewrite(
            &mut bot,
            &[
                ("https://api.github.com", api),
                ("Codertocat", "slipway%5Bbot%5D"),
            ],
        );
        bot["login"] = json!("slipway[bot]");
        bot["id"] = json!(41898282);
        bot["type"] = json!("Bot");

        let mut pull = from_hook(PULL, "pull_request");
        pull["user"] = bot.clone();
        pull["assignees"] = json!([]);
        pull["requested_reviewers"] = json!([]);
        pull["labels"] = json!([]);
        pull["head"]["repo"] = repository.clone();
        pull["base"]["repo"] = repository.clone();

        let mut comment = from_hook(COMMENT, "comment");
        comment["user"] = bot.clone();
        let mut check_run = from_hook(CHECK_RUN, "check_run");
        check_run["pull_requests"] = json!([]);

        let mut label = recorded(LABELS, "post", "/issues/1/labels", "")[0].clone();
        rewrite(&mut label, &[("https://api.github.com", api)]);

        let mut status = recorded(STATUS, "get", "/status", "");
        rewrite(
            &mut status,
            &[
                ("https://api.github.com", api),
                ("octokit-fixture-org/create-status", &full),
                ("octokit-fixture-org", owner),
            ],
        );
        status["repository"]["name"] = json!(name);

        let protection_fixture = |method: &str, has: &str| {
            let mut v = recorded(PROTECTION, method, "/branches/main/protection", has);
            rewrite_repo_paths(
                &mut v,
                "https://api.github.com/repos/",
                &format!("{api}/repos/{full}"),
            );
            v
        };
        let protected = protection_fixture("put", "required_status_checks");
        let unprotected = protection_fixture("get", "");

        Self {
            bare,
            owner: owner.to_string(),
            name: name.to_string(),
            api_url,
            repository,
            pull,
            label,
            comment,
            check_run,
            status,
            protected,
            unprotected,
            bot,
        }
    }

    fn clone_url(&self) -> String {
        format!("{}/git/{}/{}.git", self.api_url, self.owner, self.name)
    }

    fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    fn is_repo(&self, owner: &str, name: &str) -> bool {
        owner.eq_ignore_ascii_case(&self.owner) && name.eq_ignore_ascii_case(&self.name)
    }

    /// The tip of `branch`, if it exists.
    fn tip(&self, branch: &str) -> Option<String> {
        if branch.is_empty() {
            return None;
        }
        let reference = format!("refs/heads/{branch}");
        git(&self.bare, &["rev-parse", "--verify", "-q", &reference]).ok()
    }

    /// The commit a SHA or ref names, if any.
    fn commit(&self, reference: &str) -> Option<String> {
        let spec = format!("{reference}^{{commit}}");
        git(&self.bare, &["rev-parse", "--verify", "-q", &spec]).ok()
    }

    fn is_ancestor(&self, a: &str, b: &str) -> bool {
        git(&self.bare, &["merge-base", "--is-ancestor", a, b]).is_ok()
    }

    /// Merges `head` into `base` in a scratch clone and pushes `base`; returns its new tip.
    fn merge(
        &self,
        head: &str,
        base: &str,
        method: &str,
        title: &str,
        message: &str,
    ) -> Result<String, MergeError> {
        let tmp = tempfile::tempdir().map_err(|e| MergeError::Git(e.to_string()))?;
        let work = tmp.path().join("w");
        let bare = self.bare.to_string_lossy().to_string();
        git(tmp.path(), &["clone", "-q", &bare, "w"]).map_err(MergeError::Git)?;
        let run = |args: &[&str]| git(&work, args);
        let setup = [
            vec!["config", "user.name", "GitHub"],
            vec!["config", "user.email", "noreply@github.com"],
            vec!["config", "commit.gpgsign", "false"],
        ];
        for args in setup {
            run(&args).map_err(MergeError::Git)?;
        }
        let (origin_base, origin_head) = (format!("origin/{base}"), format!("origin/{head}"));
        let msg = if message.is_empty() {
            title.to_string()
        } else {
            format!("{title}\n\n{message}")
        };
        let steps: Vec<Vec<&str>> = match method {
            "squash" => vec![
                vec!["checkout", "-q", "-B", base, &origin_base],
                vec!["merge", "-q", "--squash", &origin_head],
                vec!["commit", "-q", "-m", &msg],
            ],
            "rebase" => vec![
                vec!["checkout", "-q", "-B", "fake-rebase", &origin_head],
                vec!["rebase", "-q", &origin_base],
            ],
            _ => vec![
                vec!["checkout", "-q", "-B", base, &origin_base],
                vec!["merge", "-q", "--no-ff", "-m", &msg, &origin_head],
            ],
        };
        for args in steps {
            run(&args).map_err(MergeError::Conflict)?;
        }
        run(&["push", "-q", "origin", &format!("HEAD:refs/heads/{base}")])
            .map_err(MergeError::Git)?;
        run(&["rev-parse", "HEAD"]).map_err(MergeError::Git)
    }

    fn pull(&self, pr: &Pr, mergeable: Option<bool>, base_sha: &str) -> Value {
        let mut v = self.pull.clone();
        let n = pr.number;
        let fixture_sha = str_of(&v["head"], "sha");
        rewrite(
            &mut v,
            &[
                ("/pulls/2", &format!("/pulls/{n}")),
                ("/pull/2", &format!("/pull/{n}")),
                ("/issues/2", &format!("/issues/{n}")),
                (&fixture_sha, &pr.head_sha),
            ],
        );
        let label = |branch: &str| json!(format!("{}:{branch}", self.owner));
        v["id"] = json!(pr.id);
        v["number"] = json!(n);
        v["state"] = json!(if pr.open { "open" } else { "closed" });
        v["title"] = json!(pr.title);
        v["body"] = json!(pr.body);
        v["draft"] = json!(pr.draft);
        v["labels"] = Value::Array(pr.labels.clone());
        v["created_at"] = json!(pr.created_at);
        v["updated_at"] = json!(pr.updated_at);
        v["closed_at"] = json!(pr.closed_at);
        v["merged_at"] = json!(pr.merged_at);
        v["merged"] = json!(pr.merged_at.is_some());
        v["merge_commit_sha"] = json!(pr.merge_commit_sha);
        v["mergeable"] = json!(mergeable);
        v["rebaseable"] = json!(mergeable);
        v["mergeable_state"] = json!(match mergeable {
            Some(true) => "clean",
            Some(false) => "dirty",
            None => "unknown",
        });
        v["head"]["ref"] = json!(pr.head_ref);
        v["head"]["label"] = label(&pr.head_ref);
        v["head"]["sha"] = json!(pr.head_sha);
        v["base"]["ref"] = json!(pr.base_ref);
        v["base"]["label"] = label(&pr.base_ref);
        v["base"]["sha"] = json!(base_sha);
        v
    }

    fn label(&self, name: &str, id: u64) -> Value {
        let mut v = self.label.clone();
        v["id"] = json!(id);
        v["name"] = json!(name);
        v["url"] = json!(format!(
            "{}/repos/{}/labels/{}",
            self.api_url,
            self.full_name(),
            percent_encode(name)
        ));
        v
    }

    fn comment(&self, number: u64, id: u64, body: &str) -> Value {
        let (api, full) = (&self.api_url, self.full_name());
        let now = now_rfc3339();
        let mut v = self.comment.clone();
        v["id"] = json!(id);
        v["url"] = json!(format!("{api}/repos/{full}/issues/comments/{id}"));
        v["html_url"] = json!(format!(
            "https://github.com/{full}/pull/{number}#issuecomment-{id}"
        ));
        v["issue_url"] = json!(format!("{api}/repos/{full}/issues/{number}"));
        v["body"] = json!(body);
        v["created_at"] = json!(now);
        v["updated_at"] = json!(now);
        v["author_association"] = json!("NONE");
        v["reactions"]["url"] = json!(format!("{api}/repos/{full}/issues/comments/{id}/reactions"));
        v
    }

    fn check_run(
        &self,
        id: u64,
        sha: &str,
        name: &str,
        conclusion: Option<&str>,
        output: Value,
    ) -> Value {
        let (api, full) = (&self.api_url, self.full_name());
        let now = now_rfc3339();
        let mut v = self.check_run.clone();
        v["id"] = json!(id);
        v["head_sha"] = json!(sha);
        v["name"] = json!(name);
        v["url"] = json!(format!("{api}/repos/{full}/check-runs/{id}"));
        v["html_url"] = json!(format!("https://github.com/{full}/runs/{id}"));
        v["details_url"] = json!(format!("https://ci.example.com/runs/{id}"));
        v["status"] = json!(if conclusion.is_some() {
            "completed"
        } else {
            "in_progress"
        });
        v["conclusion"] = json!(conclusion);
        v["started_at"] = json!(now);
        v["completed_at"] = if conclusion.is_some() {
            json!(now)
        } else {
            Value::Null
        };
        v["output"] = json!({
            "title": output["title"],
            "summary": output["summary"],
            "text": output["text"],
            "annotations_count": 0,
            "annotations_url": format!("{api}/repos/{full}/check-runs/{id}/annotations"),
        });
        v
    }

    fn combined_status(&self, sha: &str, state: &str, description: &str, id: u64) -> Value {
        let (api, full) = (&self.api_url, self.full_name());
        let now = now_rfc3339();
        let mut v = self.status.clone();
        let mut s = v["statuses"][0].clone();
        s["id"] = json!(id);
        s["url"] = json!(format!("{api}/repos/{full}/statuses/{sha}"));
        s["state"] = json!(state);
        s["description"] = json!(description);
        s["target_url"] = json!("https://ci.example.com/legacy");
        s["context"] = json!("ci/legacy");
        s["created_at"] = json!(now);
        s["updated_at"] = json!(now);
        v["state"] = json!(state);
        v["sha"] = json!(sha);
        v["total_count"] = json!(1);
        v["statuses"] = json!([s]);
        v["commit_url"] = json!(format!("{api}/repos/{full}/commits/{sha}"));
        v["url"] = json!(format!("{api}/repos/{full}/commits/{sha}/status"));
        v
    }
}

enum MergeError {
    /// A merge, squash or rebase step failed (a conflict): GitHub says 405.
    Conflict(String),
    /// Anything else.
    Git(String),
}

impl Reply {
    fn json(status: u16, v: Value) -> Self {
        Self {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: v.to_string().into_bytes(),
        }
    }

    fn text(status: u16, text: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: text.as_bytes().to_vec(),
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn error(status: u16, message: &str, doc: &str) -> Self {
        Self::json(
            status,
            json!({"message": message, "documentation_url": doc}),
        )
    }

    fn not_found() -> Self {
        Self::error(404, "Not Found", DOC_REST)
    }

    /// 422 "Validation Failed" with one error, as `rest/errors.json`.
    fn invalid(error: Value, doc: &str) -> Self {
        Self::json(
            422,
            json!({"message": "Validation Failed", "errors": [error], "documentation_url": doc}),
        )
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut r = Response::new(axum::body::Body::from(self.body));
        *r.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                r.headers_mut().append(k, v);
            }
        }
        r
    }
}

/// Splits a CGI response: headers (with `Status:`) up to the blank line, then the body.
fn parse_cgi(out: &[u8]) -> Reply {
    let crlf = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    let lf = out.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let (end, sep) = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or((out.len(), 0)),
    };
    let mut reply = Reply::empty(200);
    for line in String::from_utf8_lossy(&out[..end]).lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            reply.status = v.get(..3).and_then(|s| s.parse().ok()).unwrap_or(500);
        } else {
            reply.headers.push((k.trim().to_string(), v.to_string()));
        }
    }
    reply.body = out[(end + sep).min(out.len())..].to_vec();
    reply
}

/// Peels `n` layers of `PendingThen`: (still pending, the settled outcome).
fn resolve_ci(ci: &Ci, n: u32) -> (bool, &Ci) {
    match ci {
        Ci::PendingThen(next) if n == 0 => (true, settle(next)),
        Ci::PendingThen(next) => resolve_ci(next, n - 1),
        other => (false, other),
    }
}

fn settle(ci: &Ci) -> &Ci {
    match ci {
        Ci::PendingThen(next) => settle(next),
        other => other,
    }
}

fn passed_output(name: &str) -> Value {
    json!({"title": format!("{name} passed"), "summary": format!("{name} succeeded."), "text": null})
}

/// `git -C dir args…`, isolated from the caller's git environment; stdout trimmed.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "git {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Replaces substrings in every string of `v`, in order.
fn rewrite(v: &mut Value, pairs: &[(&str, &str)]) {
    match v {
        Value::String(s) => {
            for (from, to) in pairs {
                if s.contains(from) {
                    *s = s.replace(from, to);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, pairs)),
        Value::Object(o) => o.values_mut().for_each(|x| rewrite(x, pairs)),
        _ => {}
    }
}

/// Points `{prefix}ORG/REPO/…` URLs (whatever the recorded repo was called) at `to/…`.
fn rewrite_repo_paths(v: &mut Value, prefix: &str, to: &str) {
    match v {
        Value::String(s) => {
            if let Some(rest) = s.strip_prefix(prefix) {
                let tail: Vec<&str> = rest.splitn(3, '/').collect();
                *s = format!("{to}/{}", tail.get(2).unwrap_or(&""));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_repo_paths(x, prefix, to)),
        Value::Object(o) => o
            .values_mut()
            .for_each(|x| rewrite_repo_paths(x, prefix, to)),
        _ => {}
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn query_params(raw: &str) -> HashMap<String, String> {
    raw.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Percent-decoding (`+` as space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `Basic base64("x-access-token:" + token)`: the git Authorization header value.
pub fn basic_auth(token: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{GIT_USER}:{token}").as_bytes())
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_rfc3339() -> String {
    rfc3339(now_secs())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (days-to-civil, proleptic Gregorian).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
