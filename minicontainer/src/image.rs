//! Images: from an OCI image layout or a `docker save` / `podman save` tarball to the read-only
//! lower layers of an overlay, and the few configuration fields a runtime needs.
//!
//! 1. Find the image: an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/`), or a tarball
//!    with `manifest.json` (docker-save; newer ones also hold an OCI layout, which wins), or the
//!    same unpacked in a directory.
//! 2. Read the manifest and the config, each checked against the digest that names it.
//! 3. Each layer is checked (the sha256 of the blob against the manifest, the sha256 of the
//!    uncompressed tar against the config's `rootfs.diff_ids`) and unpacked once into
//!    `CACHE/layers/sha256/HEX/`: into a `.partial-...` directory beside it first, renamed when
//!    complete, so that a killed run never leaves a half layer that looks whole.
//! 4. While unpacking, whiteouts become overlayfs ones: `.wh.NAME` a 0/0 character device,
//!    `.wh..wh..opq` the `overlay.opaque` extended attribute of its directory. Entries that would
//!    land outside the layer (`..`, absolute paths, hard links out, writes through a symlink)
//!    are refused.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use labkit::bad_input;
use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use oci_spec::image::{
    Descriptor, Digest, DigestAlgorithm, ImageConfiguration, ImageIndex, ImageManifest,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// An image made ready for overlayfs: its unpacked layers and what its config says to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    /// The unpacked layers, top-most first: the order of overlayfs's `lowerdir=`. A layer the
    /// manifest lists more than once is here once, at its top-most place.
    pub layers: Vec<PathBuf>,
    /// `Env`: `NAME=value` lines.
    pub env: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`: the arguments after the entrypoint (the command itself when there is none).
    pub cmd: Vec<String>,
    /// `WorkingDir`, when set and not empty.
    pub workdir: Option<String>,
    /// `User` (`name`, `uid`, `uid:gid`, ...), when set and not empty.
    pub user: Option<String>,
}

/// Open the image at `path` (an OCI image layout directory, or a `docker save` / `podman save`
/// tarball), check every layer against its digest, and unpack the ones not yet in
/// `cache/layers/sha256/`. With `progress`, a progress bar is drawn on stderr when it is a
/// terminal.
pub fn open(path: &Path, cache: &Path, progress: bool) -> Result<Image> {
    let source = Source::open(path)?;
    let plan = if source.locate("index.json").is_ok() {
        oci_plan(&source)?
    } else {
        docker_plan(&source)?
    };
    let store = cache.join("layers").join("sha256");
    fs::create_dir_all(&store).with_context(|| format!("mkdir -p {}", store.display()))?;
    // Before its layers are unpacked: `image prune` never takes them for unused meanwhile.
    record_image(cache, path, &plan)?;
    // Absolute: overlayfs resolves lowerdir= where the mount is made, not where this runs.
    let store = fs::canonicalize(&store).with_context(|| store.display().to_string())?;
    remove_stale_partials(&store);

    let mut todo = Vec::new();
    let mut done = HashMap::new();
    for layer in &plan.layers {
        let dir = store.join(&layer.key);
        if is_real_dir(&dir) {
            done.insert(layer.key.clone(), dir);
        } else if !todo.iter().any(|l: &&LayerPlan| l.key == layer.key) {
            todo.push(layer);
        }
    }
    let bar = progress_bar(progress);
    for layer in &todo {
        let found = source.locate(&layer.path)?;
        // Each layer is read twice: once to check the blob's digest, once to unpack it.
        bar.inc_length(2 * found.size);
    }
    for (n, layer) in todo.iter().enumerate() {
        let dir = unpack_layer(&source, layer, &store, &bar, (n + 1, todo.len()))
            .inspect_err(|_| bar.finish_and_clear())?;
        done.insert(layer.key.clone(), dir);
    }
    bar.finish_and_clear();

    let config = plan.config.config().clone().unwrap_or_default();
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    // A layer listed twice (empty layers often are) is kept once, where it is top-most:
    // overlayfs refuses the same directory twice (ELOOP), and the lower copy could only show
    // what the upper one already shows.
    let mut seen = HashSet::new();
    Ok(Image {
        layers: plan
            .layers
            .iter()
            .rev()
            .map(|l| done[&l.key].clone())
            .filter(|dir| seen.insert(dir.clone()))
            .collect(),
        env: config.env().clone().unwrap_or_default(),
        entrypoint: config.entrypoint().clone().unwrap_or_default(),
        cmd: config.cmd().clone().unwrap_or_default(),
        workdir: nonempty(config.working_dir()),
        user: nonempty(config.user()),
    })
}

// ---------------------------------------------------------------------------------------------
// where the image's files are: a directory or a tarball

/// A file of the image, found: its path after following links, and its size.
#[derive(Debug, Clone)]
struct Located {
    path: String,
    size: u64,
    offset: u64,
}

#[derive(Debug)]
enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

/// The image's files: in a directory, or members of a tarball (read in place, by offset).
#[derive(Debug)]
enum Source {
    Dir {
        arg: String,
        root: PathBuf,
    },
    Tar {
        arg: String,
        file: PathBuf,
        members: HashMap<String, Member>,
    },
}

/// `a/./b//c` -> `a/b/c`; `..` goes up (and `None` when it would leave the top).
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// `--image X: not an OCI image layout or docker-save tarball (no index.json or manifest.json)`,
/// with `hint` after a `;` in the parentheses.
fn neither(arg: &str, hint: &str) -> anyhow::Error {
    let sep = if hint.is_empty() { "" } else { "; " };
    bad_input(format!(
        "--image {arg}: not an OCI image layout or docker-save tarball (no index.json or manifest.json{sep}{hint})"
    ))
}

impl Source {
    fn open(path: &Path) -> Result<Source> {
        let arg = path.display().to_string();
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bad_input(format!(
                    "--image {arg}: no such file or directory"
                )));
            }
            Err(e) => return Err(anyhow!(e).context(format!("--image {arg}"))),
        };
        if meta.is_dir() {
            let root = fs::canonicalize(path).with_context(|| format!("--image {arg}"))?;
            if !root.join("index.json").is_file() && !root.join("manifest.json").is_file() {
                return Err(neither(&arg, ""));
            }
            if let Ok(text) = fs::read_to_string(root.join("oci-layout")) {
                let version = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["imageLayoutVersion"].as_str().map(String::from));
                match version {
                    Some(v) if v.starts_with("1.") => {}
                    other => {
                        return Err(bad_input(format!(
                            "--image {arg}: oci-layout: unsupported imageLayoutVersion {}",
                            other.unwrap_or_else(|| "(none)".into())
                        )));
                    }
                }
            }
            return Ok(Source::Dir { arg, root });
        }
        if !meta.is_file() {
            return Err(neither(&arg, "not a directory or a regular file"));
        }
        let mut file = fs::File::open(path).with_context(|| format!("--image {arg}"))?;
        let mut magic = [0u8; 2];
        if file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b] {
            return Err(neither(&arg, "it is gzip-compressed: gunzip it first"));
        }
        file.rewind()?;
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(file);
        let damaged = (|| -> io::Result<()> {
            for entry in archive.entries_with_seek()? {
                let entry = entry?;
                let Some(name) = normalize(&String::from_utf8_lossy(&entry.path_bytes())) else {
                    continue;
                };
                let link = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                let member = match (entry.header().entry_type(), link) {
                    (tar::EntryType::Regular | tar::EntryType::Continuous, _) => Member::Data {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                    (tar::EntryType::Symlink, Some(target)) => {
                        // Relative to the link's directory; an absolute one, to the tarball's top.
                        let base = match name.rsplit_once('/') {
                            Some((dir, _)) if !target.starts_with('/') => dir,
                            _ => "",
                        };
                        match normalize(&format!("{base}/{target}")) {
                            Some(t) => Member::Link(t),
                            None => continue,
                        }
                    }
                    (tar::EntryType::Link, Some(target)) => match normalize(&target) {
                        Some(t) => Member::Link(t),
                        None => continue,
                    },
                    _ => continue,
                };
                members.insert(name, member);
            }
            Ok(())
        })();
        let has_index = ["index.json", "manifest.json"]
            .iter()
            .any(|n| members.contains_key(*n));
        match damaged {
            Err(_) if !has_index => Err(neither(&arg, "")),
            Err(e) => Err(bad_input(format!(
                "--image {arg}: the tarball is damaged: {e}"
            ))),
            Ok(()) if !has_index => Err(neither(&arg, "")),
            Ok(()) => Ok(Source::Tar {
                arg,
                file: path.to_path_buf(),
                members,
            }),
        }
    }

    fn arg(&self) -> &str {
        match self {
            Source::Dir { arg, .. } | Source::Tar { arg, .. } => arg,
        }
    }

    /// Find `rel` (a path inside the image), following links that stay inside it.
    fn locate(&self, rel: &str) -> Result<Located> {
        let missing = || {
            bad_input(format!(
                "--image {}: {rel:?} is not in the image",
                self.arg()
            ))
        };
        let mut name = normalize(rel)
            .filter(|n| !n.is_empty())
            .ok_or_else(missing)?;
        match self {
            Source::Dir { root, .. } => {
                let real = fs::canonicalize(root.join(&name)).map_err(|_| missing())?;
                let inside = real.strip_prefix(root).map_err(|_| missing())?;
                let meta = fs::metadata(&real).map_err(|_| missing())?;
                if !meta.is_file() {
                    return Err(missing());
                }
                Ok(Located {
                    path: inside.to_string_lossy().into_owned(),
                    size: meta.len(),
                    offset: 0,
                })
            }
            Source::Tar { members, .. } => {
                for _ in 0..16 {
                    match members.get(&name).ok_or_else(missing)? {
                        Member::Data { offset, size } => {
                            return Ok(Located {
                                path: name,
                                size: *size,
                                offset: *offset,
                            });
                        }
                        Member::Link(target) => name = target.clone(),
                    }
                }
                Err(missing())
            }
        }
    }

    /// A reader of a located file's bytes.
    fn read(&self, found: &Located) -> Result<Box<dyn Read>> {
        match self {
            Source::Dir { root, .. } => {
                let path = root.join(&found.path);
                let f =
                    fs::File::open(&path).with_context(|| format!("open({})", path.display()))?;
                Ok(Box::new(f.take(found.size)))
            }
            Source::Tar { file, .. } => {
                let mut f =
                    fs::File::open(file).with_context(|| format!("open({})", file.display()))?;
                f.seek(SeekFrom::Start(found.offset))?;
                Ok(Box::new(f.take(found.size)))
            }
        }
    }

    /// A small file (JSON) of the image, whole.
    fn read_small(&self, rel: &str) -> Result<(Located, Vec<u8>)> {
        const LIMIT: u64 = 64 << 20;
        let found = self.locate(rel)?;
        if found.size > LIMIT {
            bail!(
                "--image {}: {rel} is {} bytes: too big for an image's JSON",
                self.arg(),
                found.size
            );
        }
        let mut bytes = Vec::with_capacity(found.size as usize);
        self.read(&found)?
            .read_to_end(&mut bytes)
            .with_context(|| format!("--image {}: read {rel}", self.arg()))?;
        Ok((found, bytes))
    }

    /// The blob a descriptor names, checked against its digest.
    fn read_blob(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
        let hex = sha256_hex(desc.digest())?;
        let (_, bytes) = self.read_small(&format!("blobs/sha256/{hex}"))?;
        let got = format!("{:x}", Sha256::digest(&bytes));
        if got != hex {
            return Err(bad_input(format!(
                "{what} sha256:{} is corrupt: expected sha256:{hex}, got sha256:{got}",
                short(&hex)
            )));
        }
        Ok(bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// from the index or manifest.json to a list of layers

/// One layer to unpack: where its blob is, and the digests that check it.
#[derive(Debug, Clone)]
struct LayerPlan {
    /// Its path in the image.
    path: String,
    /// The sha256 of the blob as stored (compressed or not), when known.
    blob: Option<String>,
    /// The sha256 of the uncompressed tar (`rootfs.diff_ids`), when known.
    diff_id: Option<String>,
    /// Its position, for messages: `rootfs.diff_ids[i]`.
    index: usize,
    /// The directory name in the cache: the diff ID, else the blob digest.
    key: String,
}

impl LayerPlan {
    /// How messages name the layer: `sha256:0123456789ab…`, or its path in the image.
    fn name(&self) -> String {
        match self.blob.as_ref().or(self.diff_id.as_ref()) {
            Some(hex) => format!("sha256:{}", short(hex)),
            None => self.path.clone(),
        }
    }
}

#[derive(Debug)]
struct Plan {
    config: ImageConfiguration,
    /// Bottom-most first, as manifests list them.
    layers: Vec<LayerPlan>,
}

fn short(hex: &str) -> String {
    format!("{}…", &hex[..hex.len().min(12)])
}

/// The hex of a sha256 digest (oci-spec checks that a sha256 one is 64 lowercase hex digits).
fn sha256_hex(digest: &Digest) -> Result<String> {
    match digest.algorithm() {
        DigestAlgorithm::Sha256 => Ok(digest.digest().to_string()),
        other => Err(bad_input(format!(
            "{digest}: digest algorithm {other} is not supported (only sha256)"
        ))),
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What the path of a file in a docker-save tarball says of its digest: `blobs/sha256/HEX`
/// (docker 25+) and `HEX.tar` (podman) are named by the sha256 of their content. The older
/// `ID/layer.tar` is named by a "v1 ID" (a hash of generated JSON), not by its content: those
/// layers are checked against the config's `rootfs.diff_ids` only.
fn digest_in_path(path: &str) -> Option<String> {
    let hex = match path.strip_prefix("blobs/sha256/") {
        Some(hex) => hex,
        None if !path.contains('/') => path.strip_suffix(".tar")?,
        None => return None,
    };
    is_sha256_hex(hex).then(|| hex.to_string())
}

/// The config's `rootfs.diff_ids`, as hex; empty when it has none, and an error when it lists
/// another number of layers than the manifest.
fn diff_ids(config: &ImageConfiguration, layers: usize) -> Result<Vec<String>> {
    let ids = config.rootfs().diff_ids();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if ids.len() != layers {
        return Err(bad_input(format!(
            "the image config lists {} rootfs.diff_ids for {layers} layers",
            ids.len()
        )));
    }
    ids.iter()
        .map(|id| {
            let digest: Digest = id
                .parse()
                .map_err(|e| bad_input(format!("rootfs.diff_ids: {id:?}: {e}")))?;
            sha256_hex(&digest)
        })
        .collect()
}

fn parse_config(bytes: &[u8], arg: &str) -> Result<ImageConfiguration> {
    ImageConfiguration::from_reader(bytes)
        .map_err(|e| bad_input(format!("--image {arg}: the image config: {e}")))
}

/// GOARCH of this machine, the name OCI platforms use.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The manifest to follow in an index: one whose blob the image holds, for this machine's
/// platform if the index says, never an attestation (`unknown/unknown`).
fn choose(manifests: &[Descriptor], present: impl Fn(&Descriptor) -> bool) -> Option<&Descriptor> {
    let usable: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| present(d))
        .filter(|d| {
            d.platform()
                .as_ref()
                .is_none_or(|p| p.os().to_string() != "unknown")
        })
        .collect();
    let host = |d: &&&Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
        })
    };
    usable
        .iter()
        .find(host)
        .or_else(|| usable.iter().find(|d| d.platform().is_none()))
        .or_else(|| usable.first())
        .copied()
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    match media_type {
        "application/vnd.oci.image.index.v1+json"
        | "application/vnd.docker.distribution.manifest.list.v2+json" => true,
        "application/vnd.oci.image.manifest.v1+json"
        | "application/vnd.docker.distribution.manifest.v2+json" => false,
        _ => serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.get("manifests").is_some()),
    }
}

/// An OCI layout: index.json -> (nested indexes ->) manifest -> config and layers.
fn oci_plan(source: &Source) -> Result<Plan> {
    let arg = source.arg();
    let (_, bytes) = source.read_small("index.json")?;
    let mut index = ImageIndex::from_reader(bytes.as_slice())
        .map_err(|e| bad_input(format!("--image {arg}: index.json: {e}")))?;
    let mut depth = 0;
    let manifest = loop {
        let present = |d: &Descriptor| {
            sha256_hex(d.digest())
                .is_ok_and(|hex| source.locate(&format!("blobs/sha256/{hex}")).is_ok())
        };
        let desc = choose(index.manifests(), present).ok_or_else(|| {
            bad_input(format!(
                "--image {arg}: the index lists no manifest that is in the image"
            ))
        })?;
        let bytes = source.read_blob(desc, "manifest")?;
        if !is_index(desc.media_type().as_ref(), &bytes) {
            break ImageManifest::from_reader(bytes.as_slice()).map_err(|e| {
                bad_input(format!("--image {arg}: manifest {}: {e}", desc.digest()))
            })?;
        }
        depth += 1;
        if depth > 4 {
            return Err(bad_input(format!(
                "--image {arg}: indexes nested more than 4 deep"
            )));
        }
        index = ImageIndex::from_reader(bytes.as_slice())
            .map_err(|e| bad_input(format!("--image {arg}: index {}: {e}", desc.digest())))?;
    };
    let config = parse_config(&source.read_blob(manifest.config(), "config")?, arg)?;
    let ids = diff_ids(&config, manifest.layers().len())?;
    let layers = manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(index, desc)| {
            let media = desc.media_type().to_string();
            if media.contains("zstd") {
                return Err(bad_input(format!(
                    "--image {arg}: layer {}: {media}: zstd layers are not supported (gzip and plain tar are)",
                    desc.digest()
                )));
            }
            if !(media.contains(".tar") || media.contains("rootfs.diff")) {
                return Err(bad_input(format!(
                    "--image {arg}: layer {}: {media} is not a layer media type",
                    desc.digest()
                )));
            }
            let blob = sha256_hex(desc.digest())?;
            let diff_id = ids.get(index).cloned();
            Ok(LayerPlan {
                path: format!("blobs/sha256/{blob}"),
                key: diff_id.clone().unwrap_or_else(|| blob.clone()),
                blob: Some(blob),
                diff_id,
                index,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan { config, layers })
}

/// One image of a docker-save `manifest.json` (not an OCI format).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    layers: Vec<String>,
}

/// A docker-save tarball without an OCI layout: manifest.json -> config and layers.
fn docker_plan(source: &Source) -> Result<Plan> {
    let arg = source.arg();
    let (_, bytes) = source.read_small("manifest.json")?;
    let images: Vec<DockerManifest> = serde_json::from_slice(&bytes)
        .map_err(|e| bad_input(format!("--image {arg}: manifest.json: {e}")))?;
    let image = images
        .first()
        .ok_or_else(|| bad_input(format!("--image {arg}: manifest.json lists no image")))?;
    let (found, bytes) = source.read_small(&image.config)?;
    // The config is named by its digest (HEX.json, or blobs/sha256/HEX): it vouches for the layers.
    let named = found
        .path
        .strip_suffix(".json")
        .filter(|hex| is_sha256_hex(hex))
        .map(String::from)
        .or_else(|| digest_in_path(&found.path));
    if let Some(hex) = named {
        let got = format!("{:x}", Sha256::digest(&bytes));
        if got != hex {
            return Err(bad_input(format!(
                "config sha256:{} is corrupt: expected sha256:{hex}, got sha256:{got}",
                short(&hex)
            )));
        }
    }
    let config = parse_config(&bytes, arg)?;
    let ids = diff_ids(&config, image.layers.len())?;
    let layers = image
        .layers
        .iter()
        .enumerate()
        .map(|(index, path)| {
            let found = source.locate(path)?;
            let blob = digest_in_path(&found.path);
            let diff_id = ids.get(index).cloned();
            let key = diff_id.clone().or_else(|| blob.clone()).ok_or_else(|| {
                bad_input(format!(
                    "--image {arg}: layer {path} cannot be checked: its path is not its digest and the config has no rootfs.diff_ids"
                ))
            })?;
            Ok(LayerPlan {
                path: found.path,
                blob,
                diff_id,
                index,
                key,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan { config, layers })
}

// ---------------------------------------------------------------------------------------------
// checking and unpacking one layer

fn progress_bar(progress: bool) -> ProgressBar {
    if !(progress && io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{wide_bar}] {bytes}/{total_bytes}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Read what is left, then the hex digest of all of it.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("{:x}", self.hasher.finalize()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Plain,
    Gzip,
}

/// Compression by the first bytes of a layer.
fn compression(head: &[u8]) -> Result<Compression> {
    const OTHERS: &[(&[u8], &str)] = &[
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (b"BZh", "bzip2"),
    ];
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Compression::Gzip);
    }
    match OTHERS.iter().find(|(magic, _)| head.starts_with(magic)) {
        Some((_, name)) => Err(bad_input(format!(
            "{name}-compressed: not supported (gzip and plain tar are)"
        ))),
        None => Ok(Compression::Plain),
    }
}

/// A `.partial-...` directory in the cache, removed when dropped unless kept.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

const PARTIAL: &str = ".partial-";

/// Remove `.partial-PID-...` directories of processes that are gone (a killed run).
fn remove_stale_partials(store: &Path) {
    let Ok(entries) = fs::read_dir(store) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PARTIAL)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

fn corrupt(layer: &LayerPlan, expected: &str, got: &str, what: &str) -> anyhow::Error {
    bad_input(format!(
        "layer {} is corrupt: expected sha256:{expected}, got sha256:{got}{what}",
        layer.name()
    ))
}

/// Check one layer and unpack it into `store/KEY` (through a `.partial-...` directory).
fn unpack_layer(
    source: &Source,
    layer: &LayerPlan,
    store: &Path,
    bar: &ProgressBar,
    (n, of): (usize, usize),
) -> Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let found = source.locate(&layer.path)?;
    let diff_note = format!(" (uncompressed: rootfs.diff_ids[{}])", layer.index);

    // 1. The blob, as stored, before anything of it is parsed.
    bar.set_message(format!("checking {} ({n}/{of})", layer.name()));
    let blob = Hashing::new(bar.wrap_read(source.read(&found)?))
        .finish()
        .with_context(|| format!("read layer {}", layer.name()))?;
    if let Some(expected) = layer.blob.as_ref().filter(|e| **e != blob) {
        return Err(corrupt(layer, expected, &blob, ""));
    }

    // 2. Unpack, hashing the uncompressed tar on the way.
    bar.set_message(format!("unpacking {} ({n}/{of})", layer.name()));
    let mut raw = BufReader::new(bar.wrap_read(source.read(&found)?));
    let kind = compression(raw.fill_buf()?)
        .map_err(|e| bad_input(format!("layer {}: {e}", layer.name())))?;
    if let (Compression::Plain, Some(expected)) =
        (kind, layer.diff_id.as_ref().filter(|e| **e != blob))
    {
        return Err(corrupt(layer, expected, &blob, &diff_note));
    }
    let final_dir = store.join(&layer.key);
    let partial_dir = store.join(format!(
        "{PARTIAL}{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        &layer.key[..12.min(layer.key.len())]
    ));
    fs::create_dir(&partial_dir).with_context(|| format!("mkdir {}", partial_dir.display()))?;
    let mut partial = Partial(Some(partial_dir.clone()));
    let decoded: Box<dyn Read> = match kind {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Plain => Box::new(raw),
    };
    let mut archive = tar::Archive::new(Hashing::new(decoded));
    let mut unpacker = Unpacker::new(&partial_dir);
    let unpacked = (|| -> Result<()> {
        for entry in archive.entries()? {
            unpacker.entry(&mut entry?)?;
        }
        Ok(())
    })();
    let diff = archive.into_inner().finish();
    let diff = match (unpacked, diff) {
        (Ok(()), Ok(diff)) => diff,
        (Err(e), _) => return Err(e.context(format!("layer {}", layer.name()))),
        (_, Err(e)) => {
            return Err(bad_input(format!(
                "layer {} is corrupt: cannot read it: {e}",
                layer.name()
            )));
        }
    };
    if let Some(expected) = layer.diff_id.as_ref().filter(|e| **e != diff) {
        return Err(corrupt(layer, expected, &diff, &diff_note));
    }
    unpacker.finish()?;

    // 3. Complete: give it its name. A concurrent run may have finished the same layer first.
    match fs::rename(&partial_dir, &final_dir) {
        Ok(()) => partial.0 = None,
        Err(_) if is_real_dir(&final_dir) => {}
        Err(e) => {
            return Err(anyhow!(e).context(format!(
                "rename({}, {})",
                partial_dir.display(),
                final_dir.display()
            )));
        }
    }
    Ok(final_dir)
}

// ---------------------------------------------------------------------------------------------
// unpacking tar entries into a layer directory

/// Metadata applied to directories last (their mtime changes with each entry made in them; a
/// read-only one would refuse them).
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    mtime: i64,
    owner: (u32, u32),
}

/// Writes a layer's entries below `root`, never through a symlink and never outside it.
struct Unpacker<'a> {
    root: &'a Path,
    /// Root (in some user namespace): keep owners.
    chown: bool,
    /// Root in the initial user namespace: may set `trusted.*` attributes.
    real_root: bool,
    /// Directories already checked to be real directories (not symlinks), relative paths.
    dirs: HashSet<PathBuf>,
    deferred: HashMap<PathBuf, DirMeta>,
}

/// `a/./b/` -> `[a, b]`; `None` for `..` or an absolute path.
fn entry_components(path: &Path) -> Option<Vec<OsString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What a layer entry's metadata is, PAX records first.
#[derive(Debug, Default)]
struct EntryMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<EntryMeta> {
    let h = entry.header();
    let mut meta = EntryMeta {
        mode: h.mode()? & 0o7777,
        uid: u32::try_from(h.uid()?).context("uid above 2^32")?,
        gid: u32::try_from(h.gid()?).context("gid above 2^32")?,
        mtime: i64::try_from(h.mtime()?).unwrap_or(i64::MAX),
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let (Ok(key), value) = (ext.key(), ext.value_bytes()) else {
                continue;
            };
            let text = std::str::from_utf8(value).unwrap_or("");
            match key {
                "uid" => meta.uid = text.parse().context("PAX uid")?,
                "gid" => meta.gid = text.parse().context("PAX gid")?,
                "mtime" => {
                    if let Ok(t) = text.split('.').next().unwrap_or("").parse() {
                        meta.mtime = t;
                    }
                }
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs.push((name.to_string(), value.to_vec()));
                    }
                }
            }
        }
    }
    Ok(meta)
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

impl<'a> Unpacker<'a> {
    fn new(root: &'a Path) -> Self {
        let chown = nix::unistd::geteuid().is_root();
        Unpacker {
            root,
            chown,
            real_root: chown && !cow_demo::in_user_namespace(),
            dirs: HashSet::new(),
            deferred: HashMap::new(),
        }
    }

    /// Errors name the entry; the caller adds the layer.
    fn refuse(&self, path: &Path, why: impl fmt::Display) -> anyhow::Error {
        bad_input(format!(
            "entry {:?} {why}: refused",
            path.display().to_string()
        ))
    }

    /// Make sure every parent of `rel` is a real directory of the layer (made when missing),
    /// never a symlink: writing through one could land anywhere.
    fn parents(&mut self, entry: &Path, rel: &[OsString]) -> Result<()> {
        let mut dir = PathBuf::new();
        for part in &rel[..rel.len().saturating_sub(1)] {
            dir.push(part);
            if self.dirs.contains(&dir) {
                continue;
            }
            let path = self.root.join(&dir);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.refuse(
                        entry,
                        format!("goes through the symlink {:?}", dir.display().to_string()),
                    ));
                }
                Ok(_) => {
                    return Err(self.refuse(
                        entry,
                        format!(
                            "is below {:?}, which is not a directory",
                            dir.display().to_string()
                        ),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
                }
                Err(e) => return Err(anyhow!(e).context(format!("lstat {}", path.display()))),
            }
            self.dirs.insert(dir.clone());
        }
        Ok(())
    }

    /// Clear the way for a new entry at `path`: an existing directory stays when the new entry
    /// is one too; anything else there is removed (a later entry wins, as with tar).
    fn clear(&mut self, path: &Path, new_is_dir: bool) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() && new_is_dir => Ok(true),
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(path).with_context(|| format!("rm -r {}", path.display()))?;
                self.dirs.clear();
                Ok(false)
            }
            Ok(_) => {
                fs::remove_file(path).with_context(|| format!("rm {}", path.display()))?;
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(anyhow!(e).context(format!("lstat {}", path.display()))),
        }
    }

    fn owner(&self, res: io::Result<()>, path: &Path) -> Result<()> {
        match res {
            // In a user namespace, owners without a mapping cannot be given: keep ours.
            Err(e) if errno(&e) == Errno::EINVAL && !self.real_root => Ok(()),
            other => other.with_context(|| format!("chown {}", path.display())),
        }
    }

    fn set_mtime(&self, path: &Path, mtime: i64) -> Result<()> {
        let t = TimeSpec::new(mtime, 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        )
        .with_context(|| format!("utimensat({})", path.display()))
    }

    /// Extended attributes the archive records (`security.capability`, `user.*`), except
    /// overlayfs's own: only whiteout markers may make those.
    fn set_xattrs(&self, path: &Path, meta: &EntryMeta) -> Result<()> {
        for (name, value) in &meta.xattrs {
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                continue;
            }
            if let Err(e) = xattr::set(path, name, value) {
                // Without real root, trusted.* and security.* may be refused: the layer still
                // unpacks, as rootless runtimes do.
                if self.real_root && errno(&e) != Errno::EOPNOTSUPP {
                    return Err(anyhow!(e).context(format!("setxattr({}, {name})", path.display())));
                }
            }
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let name = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
        let rel = match entry_components(&name) {
            Some(rel) => rel,
            None if name.is_absolute() => return Err(self.refuse(&name, "has an absolute path")),
            None => return Err(self.refuse(&name, "leaves the layer directory (\"..\")")),
        };
        let meta = entry_meta(entry)?;
        let Some(last) = rel.last() else {
            // "./": the layer's top directory itself.
            self.deferred.insert(
                self.root.to_path_buf(),
                DirMeta {
                    mode: meta.mode,
                    mtime: meta.mtime,
                    owner: (meta.uid, meta.gid),
                },
            );
            return Ok(());
        };
        self.parents(&name, &rel)?;
        let path = self.root.join(rel.iter().collect::<PathBuf>());
        let last = last.as_bytes();

        // Whiteouts (the OCI layer format) become overlayfs ones.
        if last == b".wh..wh..opq" {
            let dir = path.parent().unwrap_or(self.root).to_path_buf();
            return self.opaque(&dir);
        }
        if last.starts_with(b".wh..wh.") {
            return Ok(()); // aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
        }
        if let Some(hidden) = last.strip_prefix(b".wh.") {
            if hidden.is_empty() {
                return Err(self.refuse(&name, "is a whiteout of nothing"));
            }
            let target = path.with_file_name(OsStr::from_bytes(hidden));
            return self.whiteout(&target);
        }

        match kind {
            tar::EntryType::Directory => {
                if !self.clear(&path, true)? {
                    fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
                }
                self.dirs.insert(rel.iter().collect());
                self.set_xattrs(&path, &meta)?;
                self.deferred.insert(
                    path,
                    DirMeta {
                        mode: meta.mode,
                        mtime: meta.mtime,
                        owner: (meta.uid, meta.gid),
                    },
                );
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear(&path, false)?;
                // O_EXCL | O_NOFOLLOW: never opens what is already there, a symlink least of all.
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                    .open(&path)
                    .with_context(|| format!("create {}", path.display()))?;
                io::copy(entry, &mut file).with_context(|| format!("write {}", path.display()))?;
                if self.chown {
                    self.owner(
                        std::os::unix::fs::fchown(&file, Some(meta.uid), Some(meta.gid)),
                        &path,
                    )?;
                }
                file.set_permissions(fs::Permissions::from_mode(meta.mode))
                    .with_context(|| format!("chmod {}", path.display()))?;
                self.set_xattrs(&path, &meta)?;
                let t = TimeSpec::new(meta.mtime, 0);
                nix::sys::stat::futimens(&file, &t, &t)
                    .with_context(|| format!("futimens({})", path.display()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| self.refuse(&name, "is a symlink to nothing"))?;
                self.clear(&path, false)?;
                // Kept as it is: a symlink is only followed in the container, inside its root.
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .with_context(|| format!("symlink {}", path.display()))?;
                if self.chown {
                    self.owner(
                        std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid)),
                        &path,
                    )?;
                }
                self.set_mtime(&path, meta.mtime)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| PathBuf::from(OsStr::from_bytes(&t)))
                    .ok_or_else(|| self.refuse(&name, "is a hard link to nothing"))?;
                let target_rel = entry_components(&target)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        self.refuse(
                            &name,
                            format!(
                                "is a hard link to {:?}, outside the layer",
                                target.display().to_string()
                            ),
                        )
                    })?;
                if target_rel == rel {
                    return Ok(());
                }
                self.parents(&target, &target_rel)?;
                let source = self.root.join(target_rel.iter().collect::<PathBuf>());
                match fs::symlink_metadata(&source) {
                    Ok(m) if !m.is_dir() => {}
                    _ => {
                        return Err(self.refuse(
                            &name,
                            format!(
                                "is a hard link to {:?}, which is not a file of the layer",
                                target.display().to_string()
                            ),
                        ));
                    }
                }
                self.clear(&path, false)?;
                // linkat(2) without AT_SYMLINK_FOLLOW: links a symlink itself, never its target.
                fs::hard_link(&source, &path)
                    .with_context(|| format!("ln {} {}", source.display(), path.display()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let sflag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = nix::sys::stat::makedev(
                    u64::from(entry.header().device_major()?.unwrap_or(0)),
                    u64::from(entry.header().device_minor()?.unwrap_or(0)),
                );
                self.clear(&path, false)?;
                nix::sys::stat::mknod(&path, sflag, Mode::from_bits_truncate(0o600), dev)
                    .with_context(|| format!("mknod {}", path.display()))?;
                if self.chown {
                    self.owner(
                        std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid)),
                        &path,
                    )?;
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode))
                    .with_context(|| format!("chmod {}", path.display()))?;
                self.set_mtime(&path, meta.mtime)?;
            }
            other => {
                return Err(self.refuse(&name, format!("has an unsupported type {other:?}")));
            }
        }
        Ok(())
    }

    /// `.wh.NAME` -> NAME, a character device 0/0: overlayfs's whiteout, hiding NAME of the
    /// layers below.
    fn whiteout(&mut self, path: &Path) -> Result<()> {
        self.clear(path, false)?;
        match nix::sys::stat::mknod(path, SFlag::S_IFCHR, Mode::empty(), 0) {
            Ok(()) => Ok(()),
            Err(e @ (Errno::EPERM | Errno::EACCES)) => Err(anyhow!(
                "cannot make the whiteout {}: mknod(S_IFCHR, 0:0): {e}: this kernel (Linux 5.8+ allows it without privilege) or file system does not let this user make overlayfs whiteouts; run as root",
                path.display()
            )),
            Err(e) => Err(anyhow!(e).context(format!("mknod({}, S_IFCHR, 0:0)", path.display()))),
        }
    }

    /// `DIR/.wh..wh..opq` -> DIR is opaque: nothing of the layers below shows through it.
    /// `trusted.overlay.opaque` for an overlay mounted by real root, `user.overlay.opaque` for
    /// one mounted with `userxattr` in a user namespace.
    fn opaque(&mut self, dir: &Path) -> Result<()> {
        if !is_real_dir(dir) {
            fs::create_dir(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        }
        if self.real_root {
            xattr::set(dir, "trusted.overlay.opaque", b"y")
                .with_context(|| format!("setxattr({}, trusted.overlay.opaque)", dir.display()))?;
        }
        match xattr::set(dir, "user.overlay.opaque", b"y") {
            Err(e) if self.real_root && errno(&e) == Errno::EOPNOTSUPP => Ok(()),
            other => {
                other.with_context(|| format!("setxattr({}, user.overlay.opaque)", dir.display()))
            }
        }
    }

    /// Directories' owners, modes and mtimes, deepest first.
    fn finish(self) -> Result<()> {
        let mut dirs: Vec<(PathBuf, DirMeta)> = self.deferred.into_iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (path, meta) in dirs {
            if !is_real_dir(&path) {
                continue; // replaced by a later entry
            }
            if self.chown {
                let (uid, gid) = meta.owner;
                let res = std::os::unix::fs::lchown(&path, Some(uid), Some(gid));
                match res {
                    Err(e) if errno(&e) == Errno::EINVAL && !self.real_root => {}
                    other => other.with_context(|| format!("chown {}", path.display()))?,
                }
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode))
                .with_context(|| format!("chmod {}", path.display()))?;
            let t = TimeSpec::new(meta.mtime, 0);
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &path,
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            )
            .with_context(|| format!("utimensat({})", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_and_never_leave_the_top() {
        assert_eq!(normalize("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("a/../b").as_deref(), Some("b"));
        assert_eq!(
            normalize("/blobs/sha256/x").as_deref(),
            Some("blobs/sha256/x")
        );
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("a/../../x"), None);
    }

    #[test]
    fn entry_paths_with_dotdot_or_a_root_are_refused() {
        let c = |p: &str| entry_components(Path::new(p));
        assert_eq!(c("./etc/passwd"), Some(vec!["etc".into(), "passwd".into()]));
        assert_eq!(c("./"), Some(vec![]));
        assert_eq!(c("usr/lib/"), Some(vec!["usr".into(), "lib".into()]));
        assert_eq!(c("../etc/passwd"), None);
        assert_eq!(c("a/../../b"), None);
        assert_eq!(c("a/.."), None);
        assert_eq!(c("/etc/passwd"), None);
    }

    #[test]
    fn only_content_addressed_paths_give_a_digest() {
        let hex = "a".repeat(64);
        assert_eq!(
            digest_in_path(&format!("blobs/sha256/{hex}")),
            Some(hex.clone())
        );
        assert_eq!(digest_in_path(&format!("{hex}.tar")), Some(hex.clone()));
        // docker's legacy ID/layer.tar: ID is a v1 ID, not the digest of layer.tar.
        assert_eq!(digest_in_path(&format!("{hex}/layer.tar")), None);
        assert_eq!(digest_in_path("blobs/sha256/xyz"), None);
        assert_eq!(
            digest_in_path(&format!("blobs/sha256/{}", "A".repeat(64))),
            None
        );
    }

    #[test]
    fn compression_is_told_by_magic_bytes() {
        assert_eq!(compression(&[0x1f, 0x8b, 8, 0]).unwrap(), Compression::Gzip);
        assert_eq!(compression(b"etc/\0\0\0").unwrap(), Compression::Plain);
        assert_eq!(compression(b"").unwrap(), Compression::Plain);
        let zstd = compression(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap_err();
        assert!(zstd.to_string().contains("zstd-compressed"), "{zstd}");
    }

    fn descriptor(json: serde_json::Value) -> Descriptor {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_index_entry_for_this_machine_is_chosen() {
        let d = |n: char, platform: Option<(&str, &str)>| {
            let mut v = serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", n.to_string().repeat(64)),
                "size": 1,
            });
            if let Some((os, arch)) = platform {
                v["platform"] = serde_json::json!({"os": os, "architecture": arch});
            }
            descriptor(v)
        };
        let all = vec![
            d('a', Some(("unknown", "unknown"))),
            d('b', Some(("linux", "s390x"))),
            d('c', Some(("linux", host_arch()))),
            d('d', None),
        ];
        let pick = |present: &dyn Fn(&Descriptor) -> bool| {
            choose(&all, present).map(|d| d.digest().digest()[..1].to_string())
        };
        assert_eq!(pick(&|_| true).as_deref(), Some("c"));
        // Only what the image holds (docker save keeps one platform of a multi-platform index).
        assert_eq!(
            pick(&|d| d.digest().digest().starts_with('d')).as_deref(),
            Some("d")
        );
        assert_eq!(
            pick(&|d| d.digest().digest().starts_with('b')).as_deref(),
            Some("b")
        );
        // Never an attestation.
        assert_eq!(pick(&|d| d.digest().digest().starts_with('a')), None);
    }

    #[test]
    fn manifests_and_indexes_are_told_apart() {
        assert!(is_index("application/vnd.oci.image.index.v1+json", b"{}"));
        assert!(!is_index(
            "application/vnd.oci.image.manifest.v1+json",
            b"{}"
        ));
        assert!(is_index("", br#"{"manifests": []}"#));
        assert!(!is_index("", br#"{"layers": []}"#));
    }

    #[test]
    fn diff_ids_must_match_the_layers() {
        let config = |ids: &[String]| {
            parse_config(
                serde_json::json!({
                    "architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": ids},
                })
                .to_string()
                .as_bytes(),
                "x",
            )
            .unwrap()
        };
        let id = format!("sha256:{}", "b".repeat(64));
        assert_eq!(diff_ids(&config(&[]), 2).unwrap(), Vec::<String>::new());
        assert_eq!(
            diff_ids(&config(std::slice::from_ref(&id)), 1).unwrap(),
            vec!["b".repeat(64)]
        );
        let e = diff_ids(&config(&[id]), 2).unwrap_err().to_string();
        assert!(e.contains("1 rootfs.diff_ids for 2 layers"), "{e}");
        let e = diff_ids(&config(&[format!("sha512:{}", "c".repeat(128))]), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only sha256"), "{e}");
    }

    #[test]
    fn hashing_reads_to_the_end() {
        let mut r = Hashing::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        assert_eq!(
            r.finish().unwrap(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// what the cache holds: `images`, `image prune`

/// An image the cache has layers for: `CACHE/images/ID.json`, written each time it is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedImage {
    /// The sha256 of its layers' keys and its config as read: the same image from anywhere
    /// has the same ID.
    pub id: String,
    /// Where it was last run from.
    pub source: PathBuf,
    /// Its layers' directories in `CACHE/layers/sha256/`, bottom-most first.
    pub layers: Vec<String>,
    /// When it was last run (seconds since the epoch).
    pub used: u64,
}

fn record_image(cache: &Path, path: &Path, plan: &Plan) -> Result<()> {
    let mut hash = Sha256::new();
    for layer in &plan.layers {
        hash.update(layer.key.as_bytes());
        hash.update(b"\n");
    }
    hash.update(serde_json::to_vec(&plan.config)?);
    let id = format!("{:x}", hash.finalize());
    let record = CachedImage {
        id: id.clone(),
        source: fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        layers: plan.layers.iter().map(|l| l.key.clone()).collect(),
        used: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let dir = cache.join("images");
    fs::create_dir_all(&dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
    // Whole or not at all: a new file renamed over the old one.
    let tmp = dir.join(format!(".{id}.{}", std::process::id()));
    fs::write(&tmp, serde_json::to_vec_pretty(&record)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(format!("{id}.json")))
        .with_context(|| format!("rename {}", tmp.display()))
}

/// The cache's images, oldest use first (records that cannot be read are left out).
pub fn cached_images(cache: &Path) -> Vec<CachedImage> {
    let mut found: Vec<CachedImage> = fs::read_dir(cache.join("images"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| serde_json::from_slice(&fs::read(e.path()).ok()?).ok())
        .collect();
    found.sort_by(|a, b| (a.used, &a.id).cmp(&(b.used, &b.id)));
    found
}

/// The layers' directories in the cache (unpacking ones left out), by key.
pub fn cached_layers(cache: &Path) -> Vec<String> {
    let mut keys: Vec<String> = fs::read_dir(cache.join("layers").join("sha256"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|k| !k.starts_with(PARTIAL))
        .collect();
    keys.sort();
    keys
}

/// The bytes of the regular files under `dir` (links not followed).
pub fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// `1.2 MB`: a size in SI units, as docker images prints it.
pub fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// What `image prune` removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Images whose source is gone (their records).
    pub images: Vec<CachedImage>,
    /// Layers no remaining image uses, with their sizes.
    pub layers: Vec<(String, u64)>,
}

/// `image prune`: forget the images whose source is gone, then remove every layer that no
/// image left uses and `in_use` (the layers of running containers' overlays) does not name.
pub fn prune(cache: &Path, in_use: &HashSet<String>) -> Result<Pruned> {
    let mut pruned = Pruned::default();
    let mut kept = HashSet::new();
    for image in cached_images(cache) {
        if image.source.exists() || image.layers.iter().any(|l| in_use.contains(l)) {
            kept.extend(image.layers.iter().cloned());
            continue;
        }
        let file = cache.join("images").join(format!("{}.json", image.id));
        fs::remove_file(&file).with_context(|| format!("rm {}", file.display()))?;
        pruned.images.push(image);
    }
    let store = cache.join("layers").join("sha256");
    for key in cached_layers(cache) {
        if kept.contains(&key) || in_use.contains(&key) {
            continue;
        }
        let dir = store.join(&key);
        let size = tree_size(&dir);
        crate::engine::rootfs::remove_tree(&dir)?;
        pruned.layers.push((key, size));
    }
    Ok(pruned)
}

/// The layers the overlays of these processes' mount namespaces use: every
/// `layers/sha256/KEY` in their `/proc/PID/mountinfo` (overlayfs shows its `lowerdir=`).
pub fn layers_in_use(pids: &[i32]) -> HashSet<String> {
    let mut keys = HashSet::new();
    for pid in pids {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        for (at, _) in text.match_indices("layers/sha256/") {
            let rest = &text[at + "layers/sha256/".len()..];
            let key: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            if !key.is_empty() {
                keys.insert(key);
            }
        }
    }
    keys
}
