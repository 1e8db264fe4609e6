//! Real package registries for tests, one set per test process, started on first use:
//! pypiserver (PyPI), verdaccio (npm), and a static file server holding a Cargo sparse index
//! and a GOPROXY tree. They run in a network namespace of their own ([`netns`]), so the fenced
//! setup sandbox reaches them while the host's own addresses stay fenced.
//!
//! `scripts/test-env.sh` installs pypiserver into `/opt/slipway-test/pypiserver` and verdaccio
//! into `/opt/slipway-test/verdaccio`. Publishing builds real artifacts ([`publish`]): wheels
//! and sdists into pypiserver's directory, `npm publish` to verdaccio, `.crate` files with
//! their index lines, Go module zips with `list`/`.info`/`.mod`.

pub mod netns;
pub mod publish;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use netns::{Keeper, NetNs};

/// Where `scripts/test-env.sh` installs the registries.
pub const PYPISERVER_VENV: &str = "/opt/slipway-test/pypiserver";
pub const VERDACCIO_DIR: &str = "/opt/slipway-test/verdaccio";

const PYPI_PORT: u16 = 8081;
const STATIC_PORT: u16 = 8082;
const NPM_PORT: u16 = 4873;

/// The running registries and where they answer (all inside the namespace).
pub struct TestRegistries {
    pub ns: NetNs,
    /// Files the servers read: `pypi/` (pypiserver's packages), `static/cargo/`,
    /// `static/go/`, verdaccio's storage and logs.
    pub root: PathBuf,
    /// The PEP 503 simple index: `http://ADDR:8081/simple/`.
    pub pypi: String,
    /// verdaccio: `http://ADDR:4873/`.
    pub npm: String,
    /// The sparse index base, without cargo's `sparse+` prefix: `http://ADDR:8082/cargo/`.
    pub cargo: String,
    /// The GOPROXY base: `http://ADDR:8082/go`.
    pub go: String,
    /// A verdaccio token of the user the tests publish as.
    npm_token: String,
    /// How long starting all of them took, ms (the namespace included).
    pub start_ms: u128,
    /// Serialises publishing (index files are appended to; npm publishes one at a time).
    publish_lock: Mutex<()>,
    _servers: Vec<Child>,
}

impl TestRegistries {
    /// The cargo index URL as cargo wants it: `sparse+http://ADDR:8082/cargo/`.
    pub fn cargo_sparse(&self) -> String {
        format!("sparse+{}", self.cargo)
    }

    /// The slipway lookup configuration pointing at these registries.
    pub fn lookup(&self) -> slipway::deps::registry::Registries {
        slipway::deps::registry::Registries::from_env(|k| self.setup_env(k))
    }

    /// The variables the setup sandbox gets (through `[sandbox] setup_env`) so that pip, uv,
    /// npm, cargo and go use these registries, as a host lookup.
    pub fn setup_env(&self, name: &str) -> Option<String> {
        self.setup_vars()
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Points `cfg`'s setup sandbox (and so the lookups) at these registries, as an operator
    /// would: `[sandbox] setup_env` names the variables, captured from this "host".
    pub fn configure(&self, cfg: &mut slipway::config::Config) {
        let names: Vec<String> = self
            .setup_vars()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        cfg.setup_env =
            slipway::sandbox::setup_env::SetupHostEnv::capture(&names, |k| self.setup_env(k), &[])
                .unwrap();
        cfg.file.sandbox.setup_env = names;
    }

    /// Every such variable, with its value.
    pub fn setup_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PIP_INDEX_URL", self.pypi.clone()),
            ("UV_INDEX_URL", self.pypi.clone()),
            ("npm_config_registry", self.npm.clone()),
            ("CARGO_REGISTRIES_SLIPWAY_TEST_INDEX", self.cargo_sparse()),
            (
                "CARGO_SOURCE_CRATES_IO_REPLACE_WITH",
                "slipway-test".to_string(),
            ),
            ("GOPROXY", self.go.clone()),
            ("GOSUMDB", "off".to_string()),
        ]
    }
}

static REGISTRIES: OnceLock<TestRegistries> = OnceLock::new();
static KEEPER: OnceLock<Keeper> = OnceLock::new();

/// The process's registries, started on first call (blocking; see [`registries`]).
pub fn registries_blocking() -> &'static TestRegistries {
    REGISTRIES.get_or_init(start)
}

/// The process's registries, started on first call.
pub async fn registries() -> &'static TestRegistries {
    tokio::task::spawn_blocking(registries_blocking)
        .await
        .unwrap()
}

fn start() -> TestRegistries {
    let t0 = Instant::now();
    for (what, path) in [
        ("pypiserver", format!("{PYPISERVER_VENV}/bin/python")),
        (
            "verdaccio",
            format!("{VERDACCIO_DIR}/node_modules/verdaccio/package.json"),
        ),
    ] {
        assert!(
            Path::new(&path).exists(),
            "{what} is not installed ({path} is missing): run scripts/test-env.sh"
        );
    }
    let keeper = KEEPER.get_or_init(Keeper::start);
    // Kept for the life of the process: the servers read it until they die with it.
    let root = tempfile::Builder::new()
        .prefix("slipway-registries-")
        .tempdir()
        .unwrap()
        .keep();
    let logs = root.join("logs");
    for d in ["pypi", "static/cargo", "static/go", "npm/storage", "logs"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // Removed when the process ends, however it ends (see `netns`).
    let janitor = keeper.spawn_with(
        ("TERM", "sh"),
        &[
            "-c",
            "trap 'rm -rf \"$0\"; kill $! 2>/dev/null; exit 0' TERM; sleep infinity & wait",
            root.to_str().unwrap(),
        ],
        &logs.join("janitor.log"),
    );
    let ns = NetNs::create(keeper, &logs);
    let addr = ns.addr.to_string();
    let enter = ns.enter();
    let serve_py = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/registries/serve.py"
    );
    let python = format!("{PYPISERVER_VENV}/bin/python");
    let mut servers = vec![janitor];
    for (mode, port, dir) in [
        ("pypi", PYPI_PORT, root.join("pypi")),
        ("static", STATIC_PORT, root.join("static")),
    ] {
        let args = [
            enter.as_str(),
            python.as_str(),
            serve_py,
            mode,
            addr.as_str(),
            &port.to_string(),
            dir.to_str().unwrap(),
        ];
        servers.push(keeper.spawn("nsenter", &args, &logs.join(format!("{mode}.log"))));
    }
    let cfg = root.join("npm/config.yaml");
    std::fs::write(&cfg, verdaccio_config(&root)).unwrap();
    let verdaccio = format!("{VERDACCIO_DIR}/node_modules/verdaccio/bin/verdaccio");
    let listen = format!("http://{addr}:{NPM_PORT}/");
    servers.push(keeper.spawn(
        "nsenter",
        &[
            &enter,
            "node",
            &verdaccio,
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &logs.join("verdaccio.log"),
    ));
    for (server, port) in servers[1..]
        .iter_mut()
        .zip([PYPI_PORT, STATIC_PORT, NPM_PORT])
    {
        wait_listening(server, SocketAddr::from((ns.addr, port)), &logs);
    }
    let npm = format!("http://{addr}:{NPM_PORT}/");
    let npm_token = publish::npm_user_token(&npm);
    let start_ms = t0.elapsed().as_millis();
    eprintln!(
        "test registries up in {start_ms} ms at {addr} (files: {})",
        root.display()
    );
    TestRegistries {
        pypi: format!("http://{addr}:{PYPI_PORT}/simple/"),
        npm,
        cargo: format!("http://{addr}:{STATIC_PORT}/cargo/"),
        go: format!("http://{addr}:{STATIC_PORT}/go"),
        ns,
        root,
        npm_token,
        start_ms,
        publish_lock: Mutex::new(()),
        _servers: servers,
    }
}

/// Waits until `addr` accepts connections; panics with the server's log when it exits first.
/// A generous cap (2 minutes) only keeps a broken install from hanging the suite.
fn wait_listening(server: &mut Child, addr: SocketAddr, logs: &Path) {
    let t0 = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        let dump = || {
            let mut s = String::new();
            for e in std::fs::read_dir(logs).unwrap().flatten() {
                s += &format!(
                    "--- {}\n{}\n",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                );
            }
            s
        };
        if let Some(status) = server.try_wait().unwrap() {
            panic!("the registry for {addr} exited ({status}):\n{}", dump());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the registry for {addr} is not listening after 2 minutes:\n{}",
            dump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// verdaccio: storage in the temp dir, no uplinks (nothing is proxied from npmjs.org), reads
/// for everyone, publishing for users of its htpasswd file (tests add one).
fn verdaccio_config(root: &Path) -> String {
    format!(
        "storage: {storage}\n\
         auth:\n  htpasswd:\n    file: {htpasswd}\n    max_users: 100\n\
         uplinks: {{}}\n\
         packages:\n  '@*/*':\n    access: $all\n    publish: $authenticated\n    unpublish: $authenticated\n  '**':\n    access: $all\n    publish: $authenticated\n    unpublish: $authenticated\n\
         web:\n  enable: false\n\
         log: {{ type: stdout, format: pretty, level: warn }}\n",
        storage = root.join("npm/storage").display(),
        htpasswd = root.join("npm/htpasswd").display(),
    )
}

/// The version set every ecosystem's toy package is published with: a patch, a minor and a
/// breaking major that renames the main function.
pub const TOY_VERSIONS: &[&str] = &["1.0.0", "1.0.1", "1.1.0", "2.0.0"];

/// The toy package names: PyPI and npm and Cargo `slipway-toy`, npm also `@slipway/toy`, Go
/// `example.com/Slipway/toy` (capital letter: the proxy path is `example.com/!slipway/toy`;
/// v2.0.0 is the module `example.com/Slipway/toy/v2`, as Go's major-version rule has it).
pub const TOY: &str = "slipway-toy";
pub const TOY_NPM_SCOPED: &str = "@slipway/toy";
pub const TOY_GO: &str = "example.com/Slipway/toy";

static STANDARD: OnceLock<()> = OnceLock::new();

/// Publishes the toy packages (every [`TOY_VERSIONS`], every ecosystem) once per process and
/// returns the registries.
pub async fn standard_set() -> &'static TestRegistries {
    tokio::task::spawn_blocking(|| {
        let r = registries_blocking();
        STANDARD.get_or_init(|| {
            let t0 = Instant::now();
            for v in TOY_VERSIONS {
                let files = |eco: &str| publish::toy_files(eco, v);
                r.publish_pypi(TOY, v, &as_refs(&files("pypi")));
                let js = files("npm");
                r.publish_npm(TOY, v, &as_refs(&js));
                r.publish_npm(TOY_NPM_SCOPED, v, &as_refs(&js));
                r.publish_crate(TOY, v, &as_refs(&files("cargo")));
                let module = if v.starts_with("2.") {
                    format!("{TOY_GO}/v2")
                } else {
                    TOY_GO.to_string()
                };
                r.publish_go(&module, &format!("v{v}"), &as_refs(&files("go")));
            }
            eprintln!("toy packages published in {} ms", t0.elapsed().as_millis());
        });
        r
    })
    .await
    .unwrap()
}

/// Borrows `(String, String)` pairs as the `(&str, &str)` the publish helpers take.
pub fn as_refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect()
}
