//! `minicontainer::image`: images built here, in `nslab-img-...` temp directories (removed on
//! drop, also when a test fails): OCI layouts (gzip and plain layers, a nested index),
//! docker-save tarballs (legacy and with an OCI layout), corrupt layers, layers that try to
//! write outside their directory, and, as root, the layers mounted with overlayfs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use labkit::tempdir::TempDir;
use labkit::testing::needs_root;
use minicontainer::image::{self, Image};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// The mtime every entry gets (2001-09-09).
const MTIME: u64 = 1_000_000_000;

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A layer tarball, entry by entry; names are written as they are (even `../x`).
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn raw(
        mut self,
        name: &str,
        kind: EntryType,
        data: &[u8],
        mode: u32,
        link: Option<&str>,
    ) -> Self {
        let mut h = Header::new_ustar();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        if let Some(link) = link {
            h.set_link_name_literal(link).unwrap();
        }
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(self, name: &str) -> Self {
        self.raw(name, EntryType::Directory, b"", 0o755, None)
    }

    fn file(self, name: &str, text: &str) -> Self {
        self.raw(name, EntryType::Regular, text.as_bytes(), 0o644, None)
    }

    fn owned_file(mut self, name: &str, text: &str, uid: u64, gid: u64) -> Self {
        let mut h = Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(EntryType::Regular);
        h.set_size(text.len() as u64);
        h.set_mode(0o640);
        h.set_mtime(MTIME);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.0.append(&h, text.as_bytes()).unwrap();
        self
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(name, EntryType::Symlink, b"", 0o777, Some(target))
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(name, EntryType::Link, b"", 0o644, Some(target))
    }

    fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// The two layers of the test image. The upper one deletes `gone.txt` (a whiteout), replaces
/// `opaque/` (an opaque directory) and changes `etc/os-release`.
fn lower_layer() -> Vec<u8> {
    Layer::new()
        .dir("./")
        .dir("etc/")
        .file("etc/os-release", "NAME=lower\n")
        .file("keep.txt", "kept\n")
        .file("gone.txt", "deleted above\n")
        .dir("opaque/")
        .file("opaque/old.txt", "hidden above\n")
        .dir("bin/")
        .raw("bin/tool", EntryType::Regular, b"#!/bin/sh\n", 0o750, None)
        .hardlink("bin/tool2", "bin/tool")
        .symlink("bin/sh", "/bin/busybox")
        .owned_file("owned.txt", "mine\n", 1234, 2345)
        .tar()
}

fn upper_layer() -> Vec<u8> {
    Layer::new()
        .file(".wh.gone.txt", "")
        .dir("opaque/")
        .file("opaque/.wh..wh..opq", "")
        .file("opaque/new.txt", "only this\n")
        .dir("etc/")
        .file("etc/os-release", "NAME=upper\n")
        .tar()
}

/// A layer as an image holds it: its blob (compressed or not) and the tar's digest.
struct Blob {
    bytes: Vec<u8>,
    gzip: bool,
    diff_id: String,
}

fn blob(tar: Vec<u8>, compress: bool) -> Blob {
    Blob {
        diff_id: sha(&tar),
        bytes: if compress { gzip(&tar) } else { tar },
        gzip: compress,
    }
}

fn config_json(diff_ids: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
            "Entrypoint": ["/bin/tool"],
            "Cmd": ["--serve", "8080"],
            "WorkingDir": "/srv",
            "User": "1000:1000",
            "ExposedPorts": {"8080/tcp": {}},
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>(),
        },
        "history": [{"created_by": "test"}],
    }))
    .unwrap()
}

fn put_blob(layout: &Path, bytes: &[u8]) -> serde_json::Value {
    let hex = sha(bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&hex), bytes).unwrap();
    serde_json::json!({"digest": format!("sha256:{hex}"), "size": bytes.len()})
}

fn with_type(mut desc: serde_json::Value, media_type: &str) -> serde_json::Value {
    desc["mediaType"] = media_type.into();
    desc
}

/// Write an OCI image layout of `layers` (bottom first) into `layout`; with `nested`, index.json
/// points to an index (with an attestation manifest too) that points to the manifest.
/// Returns the manifest's digest (hex).
fn oci_layout(layout: &Path, layers: &[&Blob], config: &[u8], nested: bool) -> String {
    fs::create_dir_all(layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let media = if l.gzip {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            };
            with_type(put_blob(layout, &l.bytes), media)
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": with_type(put_blob(layout, config), "application/vnd.oci.image.config.v1+json"),
        "layers": layer_descs,
    }))
    .unwrap();
    let mut top = with_type(
        put_blob(layout, &manifest),
        "application/vnd.oci.image.manifest.v1+json",
    );
    if nested {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        top["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        let mut attestation = with_type(
            put_blob(layout, br#"{"schemaVersion":2,"layers":[]}"#),
            "application/vnd.oci.image.manifest.v1+json",
        );
        attestation["platform"] = serde_json::json!({"os": "unknown", "architecture": "unknown"});
        let inner = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [attestation, top],
        }))
        .unwrap();
        top = with_type(
            put_blob(layout, &inner),
            "application/vnd.oci.image.index.v1+json",
        );
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [top]});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    sha(&manifest)
}

/// A tarball of every file below `dir` (paths relative to it), plus `extra` files.
fn tarball(dir: Option<&Path>, extra: &[(&str, &[u8])], symlinks: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    if let Some(dir) = dir {
        b.append_dir_all(".", dir).unwrap();
    }
    for (name, bytes) in extra {
        let mut h = Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    for (name, target) in symlinks {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

/// A test's scratch space: `nslab-img-PID-N` in the temp dir, removed on drop.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: TempDir::new("img"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The standard test image as an OCI layout: lower gzip, upper plain.
    fn oci(&self, rel: &str, nested: bool) -> (PathBuf, [Blob; 2]) {
        let layers = [blob(lower_layer(), true), blob(upper_layer(), false)];
        let config = config_json(&[&layers[0].diff_id, &layers[1].diff_id]);
        let path = self.path(rel);
        oci_layout(&path, &[&layers[0], &layers[1]], &config, nested);
        (path, layers)
    }
}

/// Names in `cache/layers/sha256/`, sorted.
fn store(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache.join("layers/sha256"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn xattr_of(path: &Path, name: &str) -> Option<String> {
    xattr::get(path, name)
        .unwrap()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Whether the file system of `dir` keeps `user.*` extended attributes: tmpfs has them only
/// since Linux 6.6 (the v2 VM boots 6.1, with its /tmp on tmpfs). Without them, real root's
/// layers carry trusted.overlay.* alone, and a rootless unpack is refused by name.
fn user_xattrs(dir: &Path) -> bool {
    let probe = dir.join(".nslab-xattr-probe");
    fs::write(&probe, "").unwrap();
    let ok = match xattr::set(&probe, "user.nslab", b"1") {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => false,
        Err(e) => panic!("setxattr({}, user.nslab): {e}", probe.display()),
    };
    fs::remove_file(&probe).unwrap();
    ok
}

/// `image::open`, or `None` where the one refusal this file system calls for came: a rootless
/// unpack of a layer with an opaque directory needs `user.*` xattrs, which the cache's file
/// system lacks (tmpfs before Linux 6.6), and the error names the attribute.
fn open_image(path: &Path, cache: &Path, progress: bool) -> Option<image::Image> {
    match image::open(path, cache, progress) {
        Ok(img) => Some(img),
        Err(e)
            if !real_root()
                && !user_xattrs(cache.parent().unwrap())
                && format!("{e:#}").contains("setxattr(")
                && format!("{e:#}").contains("user.overlay.opaque): Operation not supported") =>
        {
            eprintln!("refused, as it must be without user.* xattrs here: {e:#}");
            None
        }
        Err(e) => panic!("image::open({}): {e:#}", path.display()),
    }
}

fn real_root() -> bool {
    nix::unistd::geteuid().is_root() && !cow_demo::in_user_namespace()
}

/// Everything the standard test image must be once open.
fn assert_standard_image(img: &Image, cache: &Path, layers: &[Blob; 2]) {
    let dir_of = |b: &Blob| cache.join("layers/sha256").join(&b.diff_id);
    assert_eq!(
        img.layers,
        vec![dir_of(&layers[1]), dir_of(&layers[0])],
        "top-most first, each in cache/layers/sha256/DIFF_ID"
    );
    let (upper, lower) = (&img.layers[0], &img.layers[1]);

    // The upper layer: a whiteout and an opaque directory, overlayfs style.
    let wh = fs::symlink_metadata(upper.join("gone.txt")).unwrap();
    assert!(wh.file_type().is_char_device(), "gone.txt is a whiteout");
    assert_eq!(wh.rdev(), 0, "whiteout device 0:0");
    assert!(!upper.join(".wh.gone.txt").exists());
    assert!(!upper.join("opaque/.wh..wh..opq").exists());
    if user_xattrs(upper) {
        assert_eq!(
            xattr_of(&upper.join("opaque"), "user.overlay.opaque").as_deref(),
            Some("y")
        );
        assert_eq!(
            xattr_of(&upper.join("etc"), "user.overlay.opaque"),
            None,
            "only the marked directory is opaque"
        );
    } else {
        assert!(real_root(), "a rootless unpack needs user.* xattrs");
    }
    if real_root() {
        assert_eq!(
            xattr_of(&upper.join("opaque"), "trusted.overlay.opaque").as_deref(),
            Some("y")
        );
    }
    assert_eq!(
        fs::read_to_string(upper.join("opaque/new.txt")).unwrap(),
        "only this\n"
    );

    // The lower layer: contents, modes, mtimes, links, owners.
    assert_eq!(
        fs::read_to_string(lower.join("etc/os-release")).unwrap(),
        "NAME=lower\n"
    );
    let tool = fs::symlink_metadata(lower.join("bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o750);
    assert_eq!(tool.mtime(), MTIME as i64);
    assert_eq!(tool.nlink(), 2, "bin/tool2 is a hard link to it");
    assert_eq!(
        fs::symlink_metadata(lower.join("bin/tool2")).unwrap().ino(),
        tool.ino()
    );
    assert_eq!(
        fs::read_link(lower.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox"),
        "symlinks are kept as they are (dangling on the host)"
    );
    let etc = fs::symlink_metadata(lower.join("etc")).unwrap();
    assert_eq!(etc.mtime(), MTIME as i64, "directory mtimes are kept");
    assert_eq!(etc.permissions().mode() & 0o7777, 0o755);
    let owned = fs::symlink_metadata(lower.join("owned.txt")).unwrap();
    assert_eq!(owned.permissions().mode() & 0o7777, 0o640);
    if real_root() {
        assert_eq!(
            (owned.uid(), owned.gid()),
            (1234, 2345),
            "owners kept as root"
        );
    }

    // The config.
    assert_eq!(img.env, ["PATH=/usr/bin:/bin", "GREETING=hello"]);
    assert_eq!(img.entrypoint, ["/bin/tool"]);
    assert_eq!(img.cmd, ["--serve", "8080"]);
    assert_eq!(img.workdir.as_deref(), Some("/srv"));
    assert_eq!(img.user.as_deref(), Some("1000:1000"));

    assert!(
        store(cache).iter().all(|n| !n.starts_with('.')),
        "no partial layer left: {:?}",
        store(cache)
    );
}

#[test]
fn oci_layout_gzip_and_plain_layers_unpack_with_overlay_whiteouts() {
    let s = Scratch::new();
    let (path, layers) = s.oci("oci", false);
    let cache = s.path("cache");
    let Some(img) = open_image(&path, &cache, true) else {
        return;
    };
    assert_standard_image(&img, &cache, &layers);
}

#[test]
fn a_nested_index_is_followed_past_attestations() {
    let s = Scratch::new();
    let (path, layers) = s.oci("oci", true);
    let cache = s.path("cache");
    let Some(img) = open_image(&path, &cache, false) else {
        return;
    };
    assert_standard_image(&img, &cache, &layers);
}

#[test]
fn a_second_open_reuses_the_cached_layers() {
    let s = Scratch::new();
    let (path, _) = s.oci("oci", false);
    let cache = s.path("cache");
    let Some(first) = open_image(&path, &cache, false) else {
        return;
    };
    let stamp = |p: &Path| {
        let m = fs::symlink_metadata(p).unwrap();
        (
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        )
    };
    let before: Vec<_> = first.layers.iter().map(|l| stamp(l)).collect();
    let Some(second) = open_image(&path, &cache, false) else {
        return;
    };
    assert_eq!(first, second);
    let after: Vec<_> = second.layers.iter().map(|l| stamp(l)).collect();
    assert_eq!(before, after, "the layer directories were not made again");

    // A file dropped into a cached layer stays: nothing unpacks over it.
    fs::write(first.layers[1].join("marker"), "still here").unwrap();
    let Some(third) = open_image(&path, &cache, false) else {
        return;
    };
    assert_eq!(
        fs::read_to_string(third.layers[1].join("marker")).unwrap(),
        "still here"
    );
}

#[test]
fn a_layer_listed_twice_is_unpacked_and_mounted_once() {
    let s = Scratch::new();
    let (lower, upper) = (blob(lower_layer(), true), blob(upper_layer(), false));
    let path = s.path("oci");
    oci_layout(
        &path,
        &[&lower, &upper, &lower],
        &config_json(&[&lower.diff_id, &upper.diff_id, &lower.diff_id]),
        false,
    );
    let cache = s.path("cache");
    let Some(img) = open_image(&path, &cache, false) else {
        return;
    };
    let dir_of = |b: &Blob| cache.join("layers/sha256").join(&b.diff_id);
    assert_eq!(
        img.layers,
        vec![dir_of(&lower), dir_of(&upper)],
        "overlayfs refuses a lowerdir twice: the top-most place is kept"
    );
    assert_eq!(store(&cache).len(), 2);
}

#[test]
fn a_killed_run_leaves_nothing_that_looks_like_a_layer() {
    let s = Scratch::new();
    let (path, layers) = s.oci("oci", false);
    let cache = s.path("cache");
    // What a run killed while unpacking leaves: a partial directory of a process that is gone
    // (PIDs never reach 999999999), with half a layer in it.
    let partial = cache.join(format!(
        "layers/sha256/.partial-999999999-0-{}",
        &layers[0].diff_id[..12]
    ));
    fs::create_dir_all(partial.join("etc")).unwrap();
    let Some(img) = open_image(&path, &cache, false) else {
        return;
    };
    assert!(!partial.exists(), "the dead run's partial layer is removed");
    assert_standard_image(&img, &cache, &layers);
}

#[test]
fn a_legacy_docker_save_tarball_is_read_in_place() {
    let s = Scratch::new();
    let (lower, upper) = (blob(lower_layer(), false), blob(upper_layer(), false));
    let config = config_json(&[&lower.diff_id, &upper.diff_id]);
    let config_name = format!("{}.json", sha(&config));
    // docker < 25 names layer directories by a "v1 ID", which is not the layer's digest;
    // podman keeps HEX.tar and links ID/layer.tar to it.
    let (v1_lower, v1_upper) = (sha(b"v1 id of lower"), sha(b"v1 id of upper"));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["nslab/test:latest"],
        "Layers": [format!("{v1_lower}/layer.tar"), format!("{v1_upper}/layer.tar")],
    }])
    .to_string();
    let lower_path = format!("{v1_lower}/layer.tar");
    let upper_tar = format!("{}.tar", upper.diff_id);
    let upper_link = format!("{v1_upper}/layer.tar");
    let upper_target = format!("../{upper_tar}");
    let tar = tarball(
        None,
        &[
            (&lower_path, &lower.bytes),
            (&format!("{v1_lower}/VERSION"), b"1.0"),
            (&upper_tar, &upper.bytes),
            (&config_name, &config),
            ("manifest.json", manifest.as_bytes()),
            ("repositories", b"{}"),
        ],
        &[(&upper_link, &upper_target)],
    );
    let path = s.path("image.tar");
    fs::write(&path, tar).unwrap();
    let cache = s.path("cache");
    let Some(img) = open_image(&path, &cache, false) else {
        return;
    };
    assert_standard_image(&img, &cache, &[lower, upper]);
}

#[test]
fn a_docker_save_tarball_with_an_oci_layout_is_read_in_place() {
    let s = Scratch::new();
    let (layout, layers) = s.oci("layout", false);
    // docker 25+: an OCI layout, and a manifest.json whose paths point into blobs/sha256.
    let config = config_json(&[&layers[0].diff_id, &layers[1].diff_id]);
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", sha(&config)),
        "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", sha(&l.bytes))).collect::<Vec<_>>(),
    }])
    .to_string();
    let path = s.path("image.tar");
    fs::write(
        &path,
        tarball(
            Some(&layout),
            &[("manifest.json", manifest.as_bytes())],
            &[],
        ),
    )
    .unwrap();
    let cache = s.path("cache");
    let Some(img) = open_image(&path, &cache, false) else {
        return;
    };
    assert_standard_image(&img, &cache, &layers);

    // The same tarball without its OCI files: manifest.json alone is enough.
    let path = s.path("image-docker-only.tar");
    fs::remove_file(layout.join("index.json")).unwrap();
    fs::write(
        &path,
        tarball(
            Some(&layout),
            &[("manifest.json", manifest.as_bytes())],
            &[],
        ),
    )
    .unwrap();
    let cache = s.path("cache2");
    let Some(img) = open_image(&path, &cache, false) else {
        return;
    };
    assert_standard_image(&img, &cache, &layers);
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn open_err(path: &Path, cache: &Path) -> String {
    let e = image::open(path, cache, false).unwrap_err();
    let text = format!("{e:#}");
    assert!(!text.contains('\n'), "one line: {text}");
    text
}

#[test]
fn a_corrupt_layer_is_refused_naming_its_digests() {
    let s = Scratch::new();

    // OCI, the gzip layer: one byte flipped in the middle of the blob.
    let (path, layers) = s.oci("gz", false);
    let hex = sha(&layers[0].bytes);
    let file = path.join("blobs/sha256").join(&hex);
    flip_byte(&file, layers[0].bytes.len() / 2);
    let got = sha(&fs::read(&file).unwrap());
    let cache = s.path("cache-gz");
    let text = open_err(&path, &cache);
    assert_eq!(
        text,
        format!(
            "layer sha256:{}… is corrupt: expected sha256:{hex}, got sha256:{got}",
            &hex[..12]
        )
    );
    assert_eq!(store(&cache), Vec::<String>::new(), "nothing unpacked");

    // OCI, the plain layer: a byte of a file's content (the tar itself still reads).
    let (path, layers) = s.oci("plain", false);
    let hex = sha(&layers[1].bytes);
    let at = layers[1]
        .bytes
        .windows(9)
        .position(|w| w == b"only this")
        .unwrap();
    flip_byte(&path.join("blobs/sha256").join(&hex), at);
    let cache = s.path("cache-plain");
    let text = open_err(&path, &cache);
    assert!(
        text.starts_with(&format!(
            "layer sha256:{}… is corrupt: expected sha256:{hex}, got sha256:",
            &hex[..12]
        )),
        "{text}"
    );
    assert_eq!(
        store(&cache),
        vec![layers[0].diff_id.clone()],
        "the good lower layer is complete, nothing of the corrupt one is left"
    );

    // A config whose diff_id does not match the (intact) gzip layer: found after unpacking,
    // and the partial layer is removed.
    let s2 = s.path("diff");
    let (lower, upper) = (blob(lower_layer(), true), blob(upper_layer(), false));
    let wrong = sha(b"something else");
    oci_layout(
        &s2,
        &[&lower, &upper],
        &config_json(&[&wrong, &upper.diff_id]),
        false,
    );
    let cache = s.path("cache-diff");
    let text = open_err(&s2, &cache);
    assert!(
        text.contains(&format!(
            "is corrupt: expected sha256:{wrong}, got sha256:{} (uncompressed: rootfs.diff_ids[0])",
            lower.diff_id
        )),
        "{text}"
    );
    assert_eq!(store(&cache), Vec::<String>::new(), "partial layer removed");

    // docker-save legacy: layer.tar is checked against rootfs.diff_ids.
    let mut tar_bytes = lower_layer();
    let diff = sha(&tar_bytes);
    let config = config_json(&[&diff]);
    let at = tar_bytes
        .windows(10)
        .position(|w| w == b"NAME=lower")
        .unwrap();
    tar_bytes[at] ^= 0x01;
    let manifest = serde_json::json!([{"Config": format!("{}.json", sha(&config)), "Layers": ["0123/layer.tar"]}]).to_string();
    let path = s.path("legacy.tar");
    fs::write(
        &path,
        tarball(
            None,
            &[
                ("0123/layer.tar", &tar_bytes),
                (&format!("{}.json", sha(&config)), &config),
                ("manifest.json", manifest.as_bytes()),
            ],
            &[],
        ),
    )
    .unwrap();
    let cache = s.path("cache-legacy");
    assert_eq!(
        open_err(&path, &cache),
        format!(
            "layer sha256:{}… is corrupt: expected sha256:{diff}, got sha256:{} (uncompressed: rootfs.diff_ids[0])",
            &diff[..12],
            sha(&tar_bytes)
        )
    );
    assert_eq!(store(&cache), Vec::<String>::new());
}

/// An OCI layout of one layer made of `tar`, opened: the error.
fn open_single_layer(s: &Scratch, name: &str, tar: Vec<u8>) -> (String, PathBuf) {
    let layer = blob(tar, false);
    let path = s.path(name);
    oci_layout(&path, &[&layer], &config_json(&[&layer.diff_id]), false);
    let cache = s.path(&format!("cache-{name}"));
    let text = open_err(&path, &cache);
    assert_eq!(store(&cache), Vec::<String>::new(), "{name}: nothing left");
    (text, cache)
}

#[test]
fn entries_escaping_the_layer_are_refused() {
    let s = Scratch::new();
    let outside = s.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "untouched\n").unwrap();

    let (text, cache) = open_single_layer(
        &s,
        "dotdot",
        Layer::new()
            .file("ok.txt", "fine\n")
            .file("../../evil", "x")
            .tar(),
    );
    assert!(
        text.ends_with(r#"entry "../../evil" leaves the layer directory (".."): refused"#),
        "{text}"
    );
    assert!(!cache.join("evil").exists() && !cache.join("layers/evil").exists());

    let evil = outside.join("abs-evil");
    let (text, _) = open_single_layer(
        &s,
        "absolute",
        Layer::new().file(evil.to_str().unwrap(), "x").tar(),
    );
    assert!(text.contains("has an absolute path: refused"), "{text}");
    assert!(!evil.exists());

    let (text, _) = open_single_layer(
        &s,
        "hardlink",
        Layer::new()
            .hardlink("link", "../../../outside/secret")
            .tar(),
    );
    assert!(
        text.contains(r#"is a hard link to "../../../outside/secret", outside the layer"#),
        "{text}"
    );
    let (text, _) = open_single_layer(
        &s,
        "hardlink-abs",
        Layer::new()
            .hardlink("link", outside.join("secret").to_str().unwrap())
            .tar(),
    );
    assert!(text.contains("outside the layer"), "{text}");
    assert_eq!(
        fs::symlink_metadata(outside.join("secret"))
            .unwrap()
            .nlink(),
        1,
        "no hard link was made to the outside file"
    );

    // A symlink is kept, but nothing is written through it.
    let (text, _) = open_single_layer(
        &s,
        "through-symlink",
        Layer::new()
            .symlink("door", outside.to_str().unwrap())
            .file("door/pwned", "x")
            .file("door/secret", "overwritten\n")
            .tar(),
    );
    assert!(
        text.contains(r#"entry "door/pwned" goes through the symlink "door": refused"#),
        "{text}"
    );
    // A file entry where a symlink already is replaces the symlink, never writes its target.
    let layer = blob(
        Layer::new()
            .symlink("secret-link", outside.join("secret").to_str().unwrap())
            .file("secret-link", "replaced\n")
            .tar(),
        false,
    );
    let path = s.path("replace-symlink");
    oci_layout(&path, &[&layer], &config_json(&[&layer.diff_id]), false);
    let Some(img) = open_image(&path, &s.path("cache-replace"), false) else {
        return;
    };
    let replaced = img.layers[0].join("secret-link");
    assert!(fs::symlink_metadata(&replaced).unwrap().is_file());
    assert_eq!(fs::read_to_string(replaced).unwrap(), "replaced\n");

    assert!(!outside.join("pwned").exists());
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "untouched\n"
    );
    let mut names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["secret"], "nothing else appeared outside");
}

#[test]
fn what_is_not_an_image_gets_a_one_line_error() {
    let s = Scratch::new();
    let cache = s.path("cache");
    let missing = s.path("missing");
    assert_eq!(
        open_err(&missing, &cache),
        format!("--image {}: no such file or directory", missing.display())
    );
    let neither = |p: &Path| {
        format!(
            "--image {}: not an OCI image layout or docker-save tarball (no index.json or manifest.json)",
            p.display()
        )
    };
    let empty = s.path("empty-dir");
    fs::create_dir(&empty).unwrap();
    assert_eq!(open_err(&empty, &cache), neither(&empty));
    let text = s.path("notes.txt");
    fs::write(&text, "just some text\n").unwrap();
    assert_eq!(open_err(&text, &cache), neither(&text));
    let other_tar = s.path("other.tar");
    fs::write(&other_tar, tarball(None, &[("hello.txt", b"hi\n")], &[])).unwrap();
    assert_eq!(open_err(&other_tar, &cache), neither(&other_tar));
    let gz = s.path("image.tar.gz");
    fs::write(&gz, gzip(&tarball(None, &[("manifest.json", b"[]")], &[]))).unwrap();
    assert!(open_err(&gz, &cache).contains("gunzip it first"));
    assert!(!cache.join("layers").exists() || store(&cache).is_empty());
}

/// Unmounts (lazily) when dropped, before the scratch directory is removed.
struct Mounted(Vec<PathBuf>);

impl Drop for Mounted {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn merged_view(merged: &Path) {
    assert_eq!(
        fs::read_to_string(merged.join("etc/os-release")).unwrap(),
        "NAME=upper\n",
        "the upper layer wins"
    );
    assert_eq!(
        fs::read_to_string(merged.join("keep.txt")).unwrap(),
        "kept\n"
    );
    assert!(
        fs::symlink_metadata(merged.join("gone.txt")).is_err(),
        "the whiteout hides gone.txt"
    );
    let mut opaque: Vec<_> = fs::read_dir(merged.join("opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    opaque.sort();
    assert_eq!(opaque, ["new.txt"], "the opaque directory hides old.txt");
    assert_eq!(
        fs::read_link(merged.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
}

#[test]
fn overlayfs_mounts_the_layers_as_the_image_says() {
    if needs_root("overlayfs_mounts_the_layers_as_the_image_says") {
        return;
    }
    let s = Scratch::new();
    let (path, _) = s.oci("oci", false);
    let Some(img) = open_image(&path, &s.path("cache"), false) else {
        return;
    };
    let lowers: Vec<&Path> = img.layers.iter().map(PathBuf::as_path).collect();

    // This test's thread only gets a mount namespace of its own: nothing shows on the host.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
    let mut mounted = Mounted(Vec::new());

    // As a container would: the layers under a writable upper (trusted.overlay.* xattrs).
    let (upper, work, merged) = (s.path("upper"), s.path("work"), s.path("merged"));
    for d in [&upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    cow_demo::mount_overlay(&lowers, &upper, &work, &merged, "").unwrap();
    mounted.0.push(merged.clone());
    merged_view(&merged);

    // Read-only, layers only, with userxattr: the user.overlay.opaque a rootless mount reads
    // (where the cache's file system keeps user.* attributes).
    if !user_xattrs(&s.path("cache")) {
        drop(mounted);
        return;
    }
    let ro = s.path("merged-ro");
    fs::create_dir(&ro).unwrap();
    let lowerdir = lowers
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    nix::mount::mount(
        Some("overlay"),
        &ro,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={lowerdir},userxattr").as_str()),
    )
    .unwrap();
    mounted.0.push(ro.clone());
    merged_view(&ro);

    // This thread's view (/proc/self is the main thread's, which has none of these mounts).
    let mine = || fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    assert!(
        mine().contains(&merged.display().to_string()),
        "mounted here"
    );
    drop(mounted);
    assert!(!mine().contains("nslab-img"), "unmounted");
}
