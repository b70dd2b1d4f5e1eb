//! `images` and `image prune`: what the layer cache holds, and dropping what no image uses.

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::image;
use minicontainer::store::Store;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCmd {
    /// List the images the cache has layers for, with their sizes (as `images`).
    Ls,
    /// Forget the images whose source (layout or tarball) is gone, and remove every layer no
    /// image left uses (never one a running container's overlay uses).
    Prune,
}

/// `images`: a table of the cached images, then what no image uses.
pub fn list(out: &mut Narrator) -> Result<ExitCode> {
    let cache = minicontainer::image_cache();
    let store = cache.join("layers").join("sha256");
    let layers = image::cached_layers(&cache);
    let images = image::cached_images(&cache);
    let mut rows = vec![vec![
        "IMAGE ID".to_string(),
        "LAYERS".into(),
        "SIZE".into(),
        "SOURCE".into(),
    ]];
    for img in &images {
        let size: u64 = img
            .layers
            .iter()
            .filter(|l| layers.contains(l))
            .map(|l| image::tree_size(&store.join(l)))
            .sum();
        let source = match img.source.exists() {
            true => img.source.display().to_string(),
            false => format!("{} (gone)", img.source.display()),
        };
        rows.push(vec![
            img.id[..12].to_string(),
            img.layers.len().to_string(),
            image::human(size),
            source,
        ]);
    }
    out.raw(labkit::narrate::table(&rows).trim_end_matches('\n'));
    let used: std::collections::HashSet<&String> =
        images.iter().flat_map(|i| i.layers.iter()).collect();
    let unused: Vec<&String> = layers.iter().filter(|l| !used.contains(l)).collect();
    let total: u64 = layers
        .iter()
        .map(|l| image::tree_size(&store.join(l)))
        .sum();
    out.raw(format!(
        "{} layer(s), {} in {}; {} used by no image (minicontainer image prune)",
        layers.len(),
        image::human(total),
        cache.display(),
        unused.len()
    ));
    Ok(ExitCode::SUCCESS)
}

pub fn run(out: &mut Narrator, store: &Store, cmd: ImageCmd) -> Result<ExitCode> {
    match cmd {
        ImageCmd::Ls => list(out),
        ImageCmd::Prune => {
            let cache = minicontainer::image_cache();
            let pids: Vec<i32> = minicontainer::state::running(store)?
                .iter()
                .map(|r| r.pid)
                .collect();
            let pruned = image::prune(&cache, &image::layers_in_use(&pids))?;
            for img in &pruned.images {
                out.raw(format!(
                    "forgot image {} ({} is gone)",
                    &img.id[..12],
                    img.source.display()
                ));
            }
            for (key, size) in &pruned.layers {
                out.raw(format!(
                    "removed layer {} ({})",
                    &key[..key.len().min(12)],
                    image::human(*size)
                ));
            }
            let total: u64 = pruned.layers.iter().map(|(_, s)| s).sum();
            out.raw(format!(
                "{} layer(s) removed, {} freed",
                pruned.layers.len(),
                image::human(total)
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}
