//! The `hotswap` binary over temporary registries: real keys, real signatures, and every
//! bad input the issue names (not wasm, no metadata, wrong ABI, missing key, tampering).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A minimal valid guest at `version`; `meta` overrides the whole metadata text (`""`: no
/// metadata section at all).
fn guest(dir: &Path, file: &str, version: &str, meta: Option<&str>) -> PathBuf {
    let default_meta = format!("abi=1.0\nname=counter\nversion={version}\nstate-schema=1\n");
    let meta = meta.unwrap_or(&default_meta).replace('\n', "\\n");
    let wat = format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "hotswap_alloc") (param i32) (result i32) i32.const 16)
          (func (export "hotswap_free") (param i32 i32))
          (func (export "hotswap_state_save") (param i32) (result i64) i64.const 0)
          (func (export "hotswap_state_load") (param i32 i32 i32) (result i32) i32.const 0)
          (func (export "count") (result i64) i64.const {n})
          {section})"#,
        n = version.len(),
        section = if meta.is_empty() { String::new() } else { format!(r#"(@custom "hotswap.meta" "{meta}")"#) },
    );
    let path = dir.join(file);
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path
}

fn hotswap(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hotswap")).args(args.iter().map(|a| a.as_ref())).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let s = Self { dir: tempfile::tempdir().unwrap() };
        let (ok, out) = hotswap(&[&"keygen", &"--out", &s.keys(), &"--name", &"a"]);
        assert!(ok, "{out}");
        assert!(hotswap(&[&"keygen", &"--out", &s.keys(), &"--name", &"b"]).0);
        s
    }
    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }
    fn key(&self, name: &str, ext: &str) -> PathBuf {
        self.keys().join(format!("{name}.{ext}"))
    }
    fn registry(&self) -> PathBuf {
        self.dir.path().join("registry")
    }
    fn publish(&self, wasm: &Path, keys: &[&str]) -> (bool, String) {
        let fixed = [wasm.as_os_str().to_owned(), "--registry".into(), self.registry().into_os_string()];
        self.with_keys("publish", &fixed, "--key", keys, "key")
    }
    fn verify(&self, pubs: &[&str], threshold: usize) -> (bool, String) {
        let fixed = [self.registry().into_os_string(), "--threshold".into(), threshold.to_string().into()];
        self.with_keys("verify", &fixed, "--pub", pubs, "pub")
    }
    /// `hotswap <command> <fixed…> (<flag> keys/<name>.<ext>)…`
    fn with_keys(
        &self,
        command: &str,
        fixed: &[std::ffi::OsString],
        flag: &str,
        names: &[&str],
        ext: &str,
    ) -> (bool, String) {
        let mut args: Vec<std::ffi::OsString> = vec![command.into()];
        args.extend_from_slice(fixed);
        for name in names {
            args.push(flag.into());
            args.push(self.key(name, ext).into_os_string());
        }
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        hotswap(&refs)
    }
    fn manifest(&self) -> hotswap_registry::Manifest {
        let env =
            hotswap_registry::Envelope::parse(&std::fs::read(self.registry().join("manifest.json")).unwrap()).unwrap();
        env.accept(1, 1).unwrap()
    }
}

#[test]
fn keygen_writes_a_private_secret_and_never_overwrites_it() {
    let s = Setup::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(s.key("a", "key")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let (ok, out) = hotswap(&[&"keygen", &"--out", &s.keys(), &"--name", &"a"]);
    assert!(!ok && out.contains("not overwriting"), "{out}");
}

#[test]
fn inspect_shows_metadata_and_refuses_bad_modules_with_their_codes() {
    let s = Setup::new();
    let (ok, out) = hotswap(&[&"inspect", &guest(s.dir.path(), "g.wasm", "1.2.3", None)]);
    assert!(ok, "{out}");
    assert!(out.contains("counter 1.2.3") && out.contains("count () -> i64"), "{out}");
    let junk = s.dir.path().join("junk.wasm");
    std::fs::write(&junk, b"<html>").unwrap();
    for (path, expected) in [
        (junk, "not a WebAssembly module"),
        (guest(s.dir.path(), "nometa.wasm", "1.0.0", Some("")), "METADATA_MISSING"),
        (
            guest(s.dir.path(), "abi2.wasm", "1.0.0", Some("abi=2.0\nname=counter\nversion=1.0.0\nstate-schema=1\n")),
            "ABI_INCOMPATIBLE",
        ),
    ] {
        let (ok, out) = hotswap(&[&"inspect", &path]);
        assert!(!ok && out.contains(expected), "{expected}: {out}");
    }
}

#[test]
fn inspect_json_gives_a_build_the_sha256_a_page_loads_the_module_with() {
    let s = Setup::new();
    let path = guest(s.dir.path(), "g.wasm", "1.2.3", None);
    let (ok, out) = hotswap(&[&"inspect", &"--json", &path]);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&path).unwrap()));
    assert_eq!(json["sha256"], digest);
    assert_eq!((json["name"].as_str(), json["version"].as_str()), (Some("counter"), Some("1.2.3")));
    assert_eq!(json["exports"]["count"], "() -> i64");
    let junk = s.dir.path().join("junk.wasm");
    std::fs::write(&junk, b"<html>").unwrap();
    let (ok, out) = hotswap(&[&"inspect", &"--json", &junk]);
    assert!(!ok && out.contains("not a WebAssembly module"), "{out}");
}

#[test]
fn publish_then_verify_lists_each_release_by_digest_and_bumps_the_version() {
    let s = Setup::new();
    assert!(s.publish(&guest(s.dir.path(), "v1.wasm", "1.0.0", None), &["a"]).0);
    let (ok, out) = s.publish(&guest(s.dir.path(), "v2.wasm", "1.1.0", None), &["a"]);
    assert!(ok, "{out}");
    let m = s.manifest();
    assert_eq!(m.version, 2);
    assert_eq!(m.guests["counter"].current, "1.1.0");
    assert_eq!(m.guests["counter"].versions.len(), 2);
    let (ok, out) = s.verify(&["a"], 1);
    assert!(ok && out.contains("2 module(s) match"), "{out}");
}

#[test]
fn a_tampered_module_or_manifest_fails_verification() {
    let s = Setup::new();
    s.publish(&guest(s.dir.path(), "v1.wasm", "1.0.0", None), &["a"]);
    let release = s.manifest().guests["counter"].versions["1.0.0"].clone();
    let module = s.registry().join(&release.url);
    let original = std::fs::read(&module).unwrap();
    let mut bytes = original.clone();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&module, &bytes).unwrap();
    let (ok, out) = s.verify(&["a"], 1);
    assert!(!ok && out.contains("tampered module"), "{out}");
    std::fs::write(&module, &original).unwrap();

    let path = s.registry().join("manifest.json");
    let mut env = hotswap_registry::Envelope::parse(&std::fs::read(&path).unwrap()).unwrap();
    let mut manifest = env.accept(1, 1).unwrap();
    manifest.guests.get_mut("counter").unwrap().versions.get_mut("1.0.0").unwrap().sha256 = "00".repeat(32);
    use base64::Engine as _;
    env.payload = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&manifest).unwrap());
    std::fs::write(&path, env.to_json()).unwrap();
    let (ok, out) = s.verify(&["a"], 1);
    assert!(!ok && out.contains("tampered or untrusted"), "{out}");
    // Publishing onto a registry whose manifest does not verify is refused too.
    let (ok, out) = s.publish(&guest(s.dir.path(), "v2.wasm", "1.1.0", None), &["a"]);
    assert!(!ok && out.contains("tampered or untrusted"), "{out}");
}

#[test]
fn signatures_count_only_for_trusted_keys_up_to_the_threshold() {
    let s = Setup::new();
    s.publish(&guest(s.dir.path(), "v1.wasm", "1.0.0", None), &["a", "b"]);
    assert!(s.verify(&["a", "b"], 2).0);
    let (ok, out) = s.verify(&["a"], 2);
    assert!(!ok && out.contains("signed by 1 trusted key(s), 2 required"), "{out}");
    let s2 = Setup::new();
    s2.publish(&guest(s2.dir.path(), "v1.wasm", "1.0.0", None), &["a"]);
    // Keys of another setup: not trusted.
    std::fs::copy(s.key("a", "pub"), s2.key("b", "pub")).unwrap();
    let (ok, out) = s2.verify(&["b"], 1);
    assert!(!ok && out.contains("signed by 0 trusted key(s)"), "{out}");
}

#[test]
fn releases_are_immutable_and_missing_keys_are_named() {
    let s = Setup::new();
    s.publish(&guest(s.dir.path(), "v1.wasm", "1.0.0", None), &["a"]);
    let other = guest(
        s.dir.path(),
        "other.wasm",
        "1.0.0",
        Some("abi=1.0\nname=counter\nversion=1.0.0\nstate-schema=1\nnote=rebuilt\n"),
    );
    let (ok, out) = s.publish(&other, &["a"]);
    assert!(!ok && out.contains("already published"), "{out}");
    let (ok, out) = s.publish(&guest(s.dir.path(), "v2.wasm", "1.1.0", None), &["missing"]);
    assert!(!ok && out.contains("missing secret key"), "{out}");
}

#[test]
fn rollback_points_current_back_in_a_higher_manifest_version() {
    let s = Setup::new();
    s.publish(&guest(s.dir.path(), "v1.wasm", "1.0.0", None), &["a"]);
    s.publish(&guest(s.dir.path(), "v2.wasm", "1.1.0", None), &["a"]);
    let (ok, out) =
        hotswap(&[&"rollback", &"counter", &"1.0.0", &"--registry", &s.registry(), &"--key", &s.key("a", "key")]);
    assert!(ok, "{out}");
    let m = s.manifest();
    assert_eq!((m.version, m.guests["counter"].current.as_str()), (3, "1.0.0"));
    let (ok, out) =
        hotswap(&[&"rollback", &"counter", &"0.9.0", &"--registry", &s.registry(), &"--key", &s.key("a", "key")]);
    assert!(!ok && out.contains("not listed"), "{out}");
    let (ok, out) =
        hotswap(&[&"rollback", &"counter", &"1.1.0", &"--registry", &s.registry(), &"--key", &s.key("a", "key")]);
    assert!(!ok && out.contains("not older than the current 1.0.0"), "a rollback only goes back: {out}");
}

#[test]
fn promote_makes_a_listed_release_current_without_touching_module_files() {
    let s = Setup::new();
    s.publish(&guest(s.dir.path(), "v1.wasm", "1.0.0", None), &["a"]);
    let v2 = guest(s.dir.path(), "v2.wasm", "1.1.0", None);
    let fixed = [v2.into_os_string(), "--registry".into(), s.registry().into_os_string(), "--no-current".into()];
    let (ok, out) = s.with_keys("publish", &fixed, "--key", &["a"], "key");
    assert!(ok, "{out}");
    assert_eq!(s.manifest().guests["counter"].current, "1.0.0", "--no-current lists without promoting");
    // Promoting reads no module file: a tampered one is left for clients (and `verify`) to catch.
    let listed = s.manifest().guests["counter"].versions["1.1.0"].url.clone();
    std::fs::write(s.registry().join(listed), b"tampered").unwrap();
    let (ok, out) =
        hotswap(&[&"promote", &"counter", &"1.1.0", &"--registry", &s.registry(), &"--key", &s.key("a", "key")]);
    assert!(ok && out.contains("current 1.0.0 -> 1.1.0"), "{out}");
    assert_eq!((s.manifest().version, s.manifest().guests["counter"].current.as_str()), (3, "1.1.0"));
    let (ok, out) = s.verify(&["a"], 1);
    assert!(!ok && out.contains("tampered module"), "{out}");
}

#[test]
fn an_expired_manifest_fails_verification() {
    let s = Setup::new();
    let wasm = guest(s.dir.path(), "v1.wasm", "1.0.0", None);
    let (ok, _) = hotswap(&[
        &"publish",
        &wasm,
        &"--registry",
        &s.registry(),
        &"--key",
        &s.key("a", "key"),
        &"--expires-days",
        &"0",
    ]);
    assert!(ok);
    let (ok, out) = s.verify(&["a"], 1);
    assert!(!ok && out.contains("expired"), "{out}");
}

#[test]
fn twelve_simultaneous_promotes_all_succeed_with_consecutive_manifest_versions() {
    let s = Setup::new();
    s.publish(&guest(s.dir.path(), "v1.wasm", "1.0.0", None), &["a"]);
    s.publish(&guest(s.dir.path(), "v2.wasm", "1.1.0", None), &["a"]);
    let children: Vec<_> = (0..12)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_hotswap"))
                .args(["promote", "counter", if i % 2 == 0 { "1.0.0" } else { "1.1.0" }, "--registry"])
                .arg(s.registry())
                .arg("--key")
                .arg(s.key("a", "key"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut versions: Vec<u64> = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        versions.push(text.trim().rsplit(' ').next().unwrap().parse().unwrap());
    }
    versions.sort();
    assert_eq!(versions, (3..15).collect::<Vec<u64>>(), "each promote wrote its own, next version");
    assert_eq!(s.manifest().version, 14);
    let leftovers: Vec<_> = std::fs::read_dir(s.registry())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
