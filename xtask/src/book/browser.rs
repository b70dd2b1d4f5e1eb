//! The built book in a real browser: every page is loaded by headless Chromium (Debian's
//! `chromium` package), which must run its scripts without an error, build the sidebar, and
//! decode every picture.
//!
//! Each page is copied into a temporary directory (`/tmp/nslab-book-...`, removed afterwards)
//! with a small probe script first in its `<head>`. The probe records uncaught errors, failed
//! loads of scripts, styles and images, and `console.error`/`console.warn` calls; after the page's
//! `load` event it checks that every `<img>` was decoded (`naturalWidth > 0`: an SVG that is not
//! well-formed XML fails here), that at a projector's width (1280 px, sidebar open) every table
//! fits the text column and every code block fits or scrolls in its box, none past the window's
//! edge (element widths compared), and writes what it found into a `<pre id="nslab-probe">`.
//! `chromium --dump-dom` prints the DOM after the page settled, and its stderr (with
//! `--enable-logging=stderr`) any console line the probe could not catch. One Chromium per
//! page, a few at a time: slower than one instance driven over the DevTools protocol, but it
//! needs no protocol client, and the book has few pages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The probe put first in each page's `<head>` (see the module's documentation).
const PROBE: &str = r#"<script>(function () {
  var found = [];
  addEventListener("error", function (ev) {
    var t = ev.target;
    if (t && t !== window && (t.src || t.href)) {
      found.push("failed to load " + (t.src || t.href));
    } else {
      found.push("uncaught error: " + ev.message);
    }
  }, true);
  addEventListener("unhandledrejection", function (ev) {
    found.push("unhandled rejection: " + ev.reason);
  });
  ["error", "warn"].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      found.push("console." + level + ": " + Array.prototype.join.call(arguments, " "));
      return original.apply(console, arguments);
    };
  });
  addEventListener("load", function () {
    setTimeout(function () {
      var images = document.images;
      for (var i = 0; i < images.length; i++) {
        if (!images[i].complete || images[i].naturalWidth === 0) {
          found.push("picture not rendered: " + images[i].getAttribute("src"));
        }
      }
      // The projector: 1280 px wide (the window size) with the sidebar open. A table must fit
      // the text column (its cells wrap); a code block must fit or scroll in its own box; and
      // nothing may run past the window's right edge, where it would be cut off.
      var main = document.querySelector("main");
      if (main && document.documentElement.classList.contains("sidebar-visible")) {
        var column = main.getBoundingClientRect().right;
        var name = function (el) {
          return el.tagName.toLowerCase() + " \"" +
            (el.textContent || "").trim().slice(0, 40).replace(/\s+/g, " ") + "\"";
        };
        var scrolls = function (el) {
          return el && /auto|scroll/.test(getComputedStyle(el).overflowX);
        };
        main.querySelectorAll("pre, table").forEach(function (el) {
          var box = el.tagName === "TABLE" ? (el.closest(".table-wrapper") || el) : el;
          var code = el.tagName === "PRE" ? el.querySelector("code") : null;
          var r = box.getBoundingClientRect();
          if (r.right > innerWidth + 1) {
            found.push("projector (1280 px, sidebar open): " + name(el) + " ends at " +
              Math.round(r.right) + " px, past the window's " + innerWidth + " px");
          }
          if (el.tagName === "TABLE" && el.getBoundingClientRect().width > box.clientWidth + 1) {
            found.push("projector (1280 px, sidebar open): table " + name(el) + " is " +
              Math.round(el.getBoundingClientRect().width) + " px wide in a " +
              box.clientWidth + " px column: its cells must wrap");
          }
          if (el.tagName === "PRE") {
            var inner = code || el;
            if (inner.scrollWidth > inner.clientWidth + 1 && !scrolls(inner) && !scrolls(el)) {
              found.push("projector (1280 px, sidebar open): " + name(el) +
                " is cut off: wider than its box, which neither wraps nor scrolls");
            }
            if (r.right > column + 1) {
              found.push("projector (1280 px, sidebar open): " + name(el) +
                " sticks out of the text column");
            }
          }
        });
      }
      var out = document.createElement("pre");
      out.id = "nslab-probe";
      out.setAttribute("data-images", String(images.length));
      out.textContent = found.join("\n");
      document.body.appendChild(out);
    }, 0);
  });
})();</script>"#;

/// Where Chromium is, if installed: `NSLAB_CHROMIUM` when set (the only candidate then, so
/// `NSLAB_CHROMIUM=/nonexistent` shows what happens without it), else `chromium` or
/// `chromium-browser` on the `PATH` or in /usr/bin.
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NSLAB_CHROMIUM") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// A directory removed when dropped, also when the check fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let base = std::env::temp_dir();
        for n in 0..1000 {
            let path = base.join(format!("nslab-book-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("mkdir {}", path.display())),
            }
        }
        bail!("no free nslab-book-* name in {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copy `from` into `to`, putting the probe first in the `<head>` of every HTML page.
fn copy_with_probe(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("mkdir {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("{}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_with_probe(&src, &dst)?;
        } else if src.extension().is_some_and(|e| e == "html") {
            let html = std::fs::read_to_string(&src)?;
            let Some(at) = html.find("<head>") else {
                bail!("{}: no <head>", src.display());
            };
            let at = at + "<head>".len();
            std::fs::write(&dst, format!("{}{PROBE}{}", &html[..at], &html[at..]))?;
        } else {
            std::fs::copy(&src, &dst).with_context(|| format!("copy {}", src.display()))?;
        }
    }
    Ok(())
}

/// What went wrong on one page, judged from the dumped DOM and Chromium's stderr.
fn page_problems(dom: &str, stderr: &str, is_chapter: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for line in stderr.lines() {
        if line.contains(":CONSOLE") && (line.contains("Uncaught") || line.contains("Error")) {
            problems.push(format!("console: {}", line.trim()));
        }
    }
    let Some(start) = dom.find("<pre id=\"nslab-probe\"") else {
        problems.push(
            "the page never finished loading (no load event within Chromium's time budget)".into(),
        );
        return problems;
    };
    let probe = &dom[start..];
    let body = probe
        .split_once('>')
        .map(|(_, b)| b)
        .and_then(|b| b.split("</pre>").next())
        .unwrap_or_default();
    problems.extend(body.lines().filter(|l| !l.trim().is_empty()).map(|l| {
        l.replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
    }));
    if is_chapter {
        // toc.js fills the sidebar: its links are in the DOM only if the book's scripts ran.
        if !dom.contains("href=\"claims.html\"") {
            problems.push("the sidebar was not built (the book's scripts did not run)".into());
        }
        if !dom.contains("<main") || !dom.contains("<h1") {
            problems.push("no <main> with a heading: the chapter's content is missing".into());
        }
    }
    problems
}

/// What loading one page found.
struct Loaded {
    problems: Vec<String>,
    pictures: usize,
}

/// Load one page in a fresh headless Chromium (profile in `profile`, removed afterwards).
fn load_page(chromium: &Path, page: &Path, profile: &Path) -> Result<Loaded> {
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
            // A projector's width: the probe checks that code and tables fit it.
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .with_context(|| format!("run {}", chromium.display()))?;
    let _ = std::fs::remove_dir_all(profile);
    if !output.status.success() {
        return Ok(Loaded {
            problems: vec![format!("chromium failed ({})", output.status)],
            pictures: 0,
        });
    }
    let dom = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let name = page.file_name().unwrap_or_default().to_string_lossy();
    let is_chapter = !matches!(name.as_ref(), "toc.html" | "print.html");
    let pictures = dom
        .split("<pre id=\"nslab-probe\" data-images=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    Ok(Loaded {
        problems: page_problems(&dom, &stderr, is_chapter),
        pictures,
    })
}

/// Load every page of the built book at `dir` in headless Chromium. Without Chromium, say so
/// loudly and succeed, unless `NSLAB_NO_SKIP` is set (as in CI), which makes it a failure.
pub fn check_browser(dir: &Path) -> Result<()> {
    let Some(chromium) = find_chromium() else {
        let why = "chromium not found (install it: apt-get install chromium)";
        if std::env::var_os("NSLAB_NO_SKIP").is_some() {
            bail!("browser check: {why}, and NSLAB_NO_SKIP is set");
        }
        eprintln!("xtask: SKIPPED the browser check of the book: {why}");
        eprintln!("xtask: SKIPPED: pages, scripts and pictures were NOT checked in a browser");
        return Ok(());
    };
    let started = Instant::now();
    let pages = super::html_pages(dir)?;
    let tmp = TempDir::new()?;
    let copy = tmp.0.join("book");
    copy_with_probe(dir, &copy)?;
    // A few Chromiums at once: most of a page's time is the browser starting up.
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<Loaded>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let (next, pages, copy, tmp, chromium) = (&next, &pages, &copy, &tmp, &chromium);
                scope.spawn(move || {
                    let profile = tmp.0.join(format!("profile-{worker}"));
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(page) = pages.get(i) else {
                            return done;
                        };
                        let rel = page.strip_prefix(dir).unwrap_or(page);
                        done.push((i, load_page(chromium, &copy.join(rel), &profile)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a browser-check thread panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut problems = Vec::new();
    let mut pictures = 0;
    for (i, result) in results {
        let name = pages[i].strip_prefix(dir).unwrap_or(&pages[i]).display();
        let loaded = result?;
        pictures += loaded.pictures;
        problems.extend(loaded.problems.iter().map(|p| format!("{name}: {p}")));
    }
    if !problems.is_empty() {
        bail!(
            "the book in Chromium has {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    eprintln!(
        "xtask: browser check ok: {} pages loaded in {} without errors, {pictures} pictures rendered ({:.1} s)",
        pages.len(),
        chromium.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_page_has_no_problems() {
        let dom = "<main><h1>x</h1><a href=\"claims.html\">c</a></main>\
                   <pre id=\"nslab-probe\" data-images=\"1\"></pre>";
        assert!(page_problems(dom, "[1:1:INFO:CONSOLE:1] \"hello\"", true).is_empty());
    }

    #[test]
    fn errors_failed_pictures_and_unfinished_pages_are_problems() {
        let dom = "<main><h1>x</h1></main><pre id=\"nslab-probe\" data-images=\"1\">\
                   picture not rendered: a.svg</pre>";
        let stderr = "[1:1:INFO:CONSOLE:1] \"Uncaught ReferenceError: f is not defined\"";
        let found = page_problems(dom, stderr, true);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[1].contains("a.svg"));
        assert!(found[2].contains("sidebar"));
        assert!(page_problems("<html></html>", "", false)[0].contains("never finished"));
    }
}
