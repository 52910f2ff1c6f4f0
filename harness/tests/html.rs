//! `tcpdrill run --html DIR` as a person sees it: the pages of a passing handshake, a simultaneous open and a
//! failing run are rendered, every ladder is well-formed SVG (parsed by quick-xml), and headless Chromium takes a
//! screenshot of each (skipped with the reason printed where Chromium is not installed; CI installs Debian's
//! `chromium`). The screenshots are left in the folder printed, to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Headless Chromium's command, where it is installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// A screenshot of `page` by headless Chromium into `shot`, checked to be a PNG of some substance.
fn screenshot(browser: &str, page: &Path, shot: &Path, size: &str) {
    let o = Command::new("timeout")
        .args(["120", browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let png = std::fs::read(shot).unwrap_or_else(|e| {
        panic!("{browser} wrote no screenshot of {} ({e}): {}", page.display(), String::from_utf8_lossy(&o.stderr))
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{}: a screenshot of {} bytes",
        page.display(),
        png.len()
    );
}

#[test]
fn html_report_renders() {
    let dir = std::env::temp_dir().join(format!("tcpdrill-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new(env!("CARGO_BIN_EXE_tcpdrill"))
        .current_dir(root())
        .args(["run", "--backend", "reference,smoltcp", "--html", dir.to_str().expect("utf-8")])
        .args([
            "scripts/handshake/passive-open.pkt",
            "scripts/handshake/simultaneous-open.pkt",
            "scripts/close/close-in-syn-sent.pkt",
        ])
        .output()
        .expect("the binary runs");
    assert_eq!(o.status.code(), Some(1), "smoltcp fails close-in-syn-sent");
    let page = |name: &str| std::fs::read_to_string(dir.join(name)).expect("the page is written");
    let index = page("index.html");
    assert!(index.contains("4 passed") && index.contains("2 failed"), "{index}");
    let pages = [
        "scripts_handshake_passive-open.reference.html",
        "scripts_handshake_simultaneous-open.reference.html",
        "scripts_close_close-in-syn-sent.smoltcp.html",
    ];
    for p in pages {
        let html = page(p);
        assert!(index.contains(&format!("href=\"{p}\"")), "the index links {p}");
        let start = html.find("<svg").expect("a ladder");
        let end = html.find("</svg>").expect("a whole ladder") + "</svg>".len();
        let svg = &html[start..end];
        let mut reader = quick_xml::Reader::from_str(svg);
        let (mut arrows, mut depth) = (0, 0i32);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(e)) => {
                    depth += 1;
                    arrows += usize::from(
                        e.name().as_ref() == b"g"
                            && e.try_get_attribute("class")
                                .ok()
                                .flatten()
                                .is_some_and(|a| a.value.as_ref() == b"in" || a.value.as_ref() == b"out"),
                    );
                }
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(_) => {}
                Err(e) => panic!("{p}: the SVG does not parse at {}: {e}", reader.buffer_position()),
            }
        }
        assert_eq!(depth, 0, "{p}: every element closed");
        assert!(arrows >= 3, "{p}: {arrows} arrows");
    }
    // Every arrow slopes down: it ends lower than it starts.
    let simultaneous = page(pages[1]);
    for l in simultaneous.split("<line ").skip(1).filter(|l| l.contains("marker-end")) {
        let num = |k: &str| -> usize {
            let at = l.find(&format!("{k}=\"")).expect("coordinate") + k.len() + 2;
            l[at..].split('"').next().and_then(|v| v.parse().ok()).expect("a number")
        };
        assert!(num("y2") > num("y1"), "an arrow that does not slope with time: {l}");
    }
    let failing = page(pages[2]);
    assert!(failing.contains("class=\"failed\" id=\"L10\""), "the failing line is marked");
    assert!(failing.contains("actual packet:"), "the actual packet is shown");
    assert!(simultaneous.contains("rfc9293.html#section-3.5"), "requirement tags link to RFC 9293");
    let Some(browser) = chromium() else {
        eprintln!("skipped the screenshots: Chromium is not installed (apt-get install chromium)");
        return;
    };
    for p in pages.iter().chain(&["index.html"]) {
        screenshot(browser, &dir.join(p), &dir.join(format!("{p}.png")), "1240,1000");
    }
    eprintln!("screenshots in {}", dir.display());
}

/// `coverage --html`: suite.html has RFC 9293's state diagram with all eleven states, each saying how much of it
/// the suite drove, the state x stimulus matrix, and the requirements as a table.
#[test]
fn suite_page_renders() {
    let dir = std::env::temp_dir().join(format!("tcpdrill-html-suite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new(env!("CARGO_BIN_EXE_tcpdrill"))
        .current_dir(root())
        .args(["coverage", "--backends", "reference", "--html", dir.to_str().expect("utf-8"), "scripts/handshake"])
        .output()
        .expect("the binary runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(dir.join("suite.html")).expect("suite.html");
    let start = page.find("<svg").expect("the state diagram");
    let end = page.find("</svg>").expect("a whole diagram") + "</svg>".len();
    let mut reader = quick_xml::Reader::from_str(&page[start..end]);
    let mut texts = String::new();
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Text(t)) => texts.push_str(&format!("{}\n", String::from_utf8_lossy(&t))),
            Ok(_) => {}
            Err(e) => panic!("the diagram does not parse: {e}"),
        }
    }
    for s in tcpdrill_stack::TcpState::ALL {
        assert!(texts.contains(&format!("{}\n", s.rfc_name())), "{} missing from the diagram", s.rfc_name());
    }
    assert!(texts.contains("/15 driven") && texts.contains("/16 driven"), "each state says how much: {texts}");
    assert!(page.contains("<table class=\"matrix\">") && page.contains("<td class=\"hit\""));
    assert!(page.contains("<th>requirement</th>"), "the requirements as an HTML table");
    let index = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    assert!(index.contains("href=\"suite.html\""));
    if let Some(browser) = chromium() {
        screenshot(browser, &dir.join("suite.html"), &dir.join("suite.png"), "900,720");
    } else {
        eprintln!("skipped the screenshot: Chromium is not installed (apt-get install chromium)");
    }
}
