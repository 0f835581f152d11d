//! A real ACME server for HTTPS tests: Debian's `pebble`, with
//! `pebble-challtestsrv` as its DNS (every name resolves to 127.0.0.1, so
//! validation dials the test's own ports), and a test CA (rcgen) for
//! pebble's own HTTPS listener and for custom certificates.
//!
//! ```no_run
//! # let dir = std::path::Path::new("/tmp/x");
//! use slipway_testkit::pebble::{Pebble, PebbleOptions};
//! let pebble = Pebble::start(dir, &PebbleOptions { http_port: 20080, tls_port: 20443,
//!     ..PebbleOptions::new([20100, 20101, 20102, 20103]) });
//! let directory = pebble.directory(); // https://127.0.0.1:20100/dir
//! let root = pebble.issuing_root_pem(); // verifies what it issues
//! # let _ = (directory, root);
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A test CA that signs leaf certificates.
pub struct TestCa {
    pub cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        TestCa {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// (chain PEM, key PEM) for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// How pebble is run.
pub struct PebbleOptions {
    /// Address its ACME listener binds (`0.0.0.0` to be reached from
    /// containers as `host.docker.internal`).
    pub listen_host: String,
    /// Ports of: the ACME listener, its management listener, the DNS server
    /// and the DNS server's management listener.
    pub ports: [u16; 4],
    /// Where validation dials: HTTP-01 and TLS-ALPN-01.
    pub http_port: u16,
    pub tls_port: u16,
    /// Lifetime of issued certificates.
    pub validity_secs: u64,
}

impl PebbleOptions {
    pub fn new(ports: [u16; 4]) -> Self {
        Self {
            listen_host: "127.0.0.1".into(),
            ports,
            http_port: 80,
            tls_port: 443,
            validity_secs: 3600,
        }
    }
}

/// pebble and pebble-challtestsrv, killed on drop.
pub struct Pebble {
    children: Vec<Child>,
    dir: PathBuf,
    listen: u16,
    management: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Starts both in `dir` (config, certificates, logs) and waits until
    /// pebble listens.
    pub fn start(dir: &Path, opts: &PebbleOptions) -> Pebble {
        let dir = dir.join("pebble");
        std::fs::create_dir_all(&dir).expect("pebble dir");
        let api = TestCa::new("pebble api test CA");
        let (cert, key) = api.leaf(&["127.0.0.1", "localhost", "host.docker.internal"]);
        std::fs::write(dir.join("cert.pem"), cert).expect("write");
        std::fs::write(dir.join("key.pem"), key).expect("write");
        std::fs::write(dir.join("api-root.pem"), &api.cert_pem).expect("write");
        let [listen, management, dns, dns_management] = opts.ports;
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "{}:{listen}", "managementListenAddress": "127.0.0.1:{management}",
               "certificate": "{}", "privateKey": "{}", "httpPort": {}, "tlsPort": {},
               "ocspResponderURL": "", "externalAccountBindingRequired": false,
               "certificateValidityPeriod": {}}}}}"#,
            opts.listen_host,
            dir.join("cert.pem").display(),
            dir.join("key.pem").display(),
            opts.http_port,
            opts.tls_port,
            opts.validity_secs,
        );
        std::fs::write(dir.join("config.json"), config).expect("write");
        let log = |name: &str| {
            std::fs::File::create(dir.join(name))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        };
        let dns_child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package `pebble`; scripts/setup.sh installs it)");
        let pebble_child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("config.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Validate every order afresh, so renewals exercise challenges too.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package `pebble`; scripts/setup.sh installs it)");
        let pebble = Pebble {
            children: vec![pebble_child, dns_child],
            dir,
            listen,
            management,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pebble did not listen within 15 s: {}",
                pebble.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pebble
    }

    /// The ACME directory URL as seen from this machine.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen)
    }

    pub fn listen_port(&self) -> u16 {
        self.listen
    }

    /// PEM file of the CA behind pebble's own HTTPS (`--acme-ca-root`).
    pub fn api_root(&self) -> PathBuf {
        self.dir.join("api-root.pem")
    }

    /// The root pebble issues under (a new one at every start), as PEM.
    pub fn issuing_root_pem(&self) -> String {
        let out = Command::new("curl")
            .args(["-sf", "-m", "10", "--cacert"])
            .arg(self.api_root())
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .expect("curl");
        assert!(out.status.success(), "pebble /roots/0: {}", self.log());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// pebble's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }
}
