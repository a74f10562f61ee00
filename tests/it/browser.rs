//! The HTML reports as a user sees them: each page opened in headless Chromium (Debian's package,
//! installed by `make test`: scripts/install_chromium.sh), with no network, from `file://`. A
//! script of the test's own, added to a copy of the page, reads what the browser built: the rows
//! of a table (compared here with the CSV the page shows), the order after a click on a header,
//! the rows left after a filter, and every error the page's script or the browser's console
//! reported. A screenshot of each page is kept in `target/test-artifacts/`.

use crate::cli::{last_json, ok, repo};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Chromium's path, or None (a skip; under CI a failure: `shared::skip`).
fn chromium() -> Option<PathBuf> {
    let found = Command::new("sh").args(["-c", "command -v chromium"]).output().ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    if path.is_empty() {
        crate::shared::skip("browser::*", "Chromium is not installed (make test installs it: scripts/install_chromium.sh)");
        return None;
    }
    Some(PathBuf::from(path))
}

/// Chromium, headless, no network, a profile of its own, with `args` then the page.
fn headless(chromium: &Path, page: &Path, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--allow-file-access-from-files"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

/// The page's DOM after its scripts ran, with the test's `probe` script run last: returns the
/// JSON the probe wrote into `<pre id="probe">`.
fn probe(chromium: &Path, page: &Path, probe: &str) -> serde_json::Value {
    let html = std::fs::read_to_string(page).unwrap();
    // Errors are caught from the start: the browser's (window.onerror) and the console's.
    let catch = "<script>window.__errors=[];window.addEventListener('error',function(e){__errors.push(String(e.message))});\
                 (function(){var c=console.error;console.error=function(){__errors.push(Array.prototype.join.call(arguments,' '));c.apply(console,arguments)}})();</script>";
    let with_probe =
        html.replacen("<head>", &format!("<head>{catch}"), 1).replacen("</body>", &format!("<script>{probe}</script></body>"), 1);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("page.html");
    std::fs::write(&copy, with_probe).unwrap();
    let out = headless(chromium, &copy, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"probe\">").unwrap_or_else(|| panic!("no probe output: {}", String::from_utf8_lossy(&out.stderr)));
    let text = &dom[start + "<pre id=\"probe\">".len()..];
    let text = &text[..text.find("</pre>").unwrap()];
    serde_json::from_str(&text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")).unwrap()
}

/// The probe: table `id`'s rows and headers; a click on header `sort_by` and the column's keys
/// after it; filter `column` set to `value` and that column's text in the rows left shown; the
/// errors seen. The page's filters and sort are its own script's: the probe only clicks and picks.
fn table_probe(id: &str, sort_by: &str, column: usize, value: &str) -> String {
    let (id, sort_by, value) = (js(id), js(sort_by), js(value));
    format!(
        r#"(function () {{
  var out = {{}};
  var t = document.getElementById({id});
  var cells = function () {{ return Array.prototype.map.call(t.tBodies[0].rows, function (r) {{
    return Array.prototype.map.call(r.cells, function (c) {{ return c.textContent; }}); }}); }};
  out.headers = Array.prototype.map.call(t.tHead.rows[0].cells, function (c) {{ return c.textContent; }});
  out.rows = cells();
  var col = out.headers.indexOf({sort_by});
  t.tHead.rows[0].cells[col].click();
  out.sorted = Array.prototype.map.call(t.tBodies[0].rows, function (r) {{ var c = r.cells[col]; return c.hasAttribute('data-sort') ? c.getAttribute('data-sort') : c.textContent; }});
  var select = document.querySelector('.filters[data-for={id}] select[data-column="{column}"]');
  select.value = {value};
  select.dispatchEvent(new Event('change'));
  out.shown = Array.prototype.filter.call(t.tBodies[0].rows, function (r) {{ return !r.classList.contains('hidden'); }})
    .map(function (r) {{ return r.cells[{column}].textContent; }});
  out.errors = window.__errors.concat(document.getElementById('errors').textContent ? [document.getElementById('errors').textContent] : []);
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
}})();"#
    )
}

/// `s` as a JavaScript string literal that may sit inside a `<script>` element (no `</script>`).
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap().replace('<', "\\u003c")
}

/// A CSV's rows as the page shows them (quoted fields unquoted).
fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = split(lines.next().unwrap());
    (header, lines.map(split).collect())
}

fn split(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                out.last_mut().unwrap().push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// Checks a page's table against its CSV, its sort by a numeric column and a filter, and that the
/// browser saw no error; keeps a screenshot.
fn check_page(chromium: &Path, page: &Path, csv: &Path, table: &str, sort_by: &str, filter_column: usize, artefact: &str) {
    let (header, rows) = csv_rows(csv);
    let value = rows[rows.len() / 2][filter_column].clone();
    let got = probe(chromium, page, &table_probe(table, sort_by, filter_column, &value));
    assert!(strings(&got["errors"]).is_empty(), "{}: errors in the page: {:?}", page.display(), got["errors"]);
    // Every row of the CSV, every field as written, in the DOM.
    assert_eq!(strings(&got["headers"]), header);
    let shown: Vec<Vec<String>> = got["rows"].as_array().unwrap().iter().map(strings).collect();
    assert_eq!(shown, rows, "{}: the page's rows are not the CSV's", page.display());
    // Sorted by the column: its numbers ascend (blank cells aside).
    let sorted: Vec<f64> = strings(&got["sorted"]).iter().filter_map(|s| s.parse().ok()).collect();
    assert!(sorted.len() > 10 && sorted.windows(2).all(|w| w[0] <= w[1]), "{}: not ascending: {sorted:?}", page.display());
    // Filtered: only the chosen value's rows, all of them.
    let kept = strings(&got["shown"]);
    let want = rows.iter().filter(|r| r[filter_column] == value).count();
    assert!(kept.iter().all(|v| *v == value) && kept.len() == want, "{}: filter {value}: {kept:?}", page.display());
    let dir = repo().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join(artefact);
    let out = headless(chromium, page, &["--window-size=1400,1800", &format!("--screenshot={}", shot.display())]);
    assert!(shot.is_file() && std::fs::metadata(&shot).unwrap().len() > 10_000, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_report_page_shows_every_value_sorts_and_filters_in_a_browser() {
    let Some(chromium) = chromium() else { return };
    let s = &crate::shared::built().scratch;
    let page = s.path("reports/report.html");
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(size < 3_000_000, "report.html is {size} bytes");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing fetched (no src or href out of the page), and the run's section filled in.
    for outside in ["src=\"http", "href=\"http", "src=\"//", "@import", "url(http"] {
        assert!(!html.contains(outside), "report.html fetches {outside}");
    }
    assert!(!html.contains(oodpipe_html::RUN_MARKER) && html.contains("Platform (training repeats"), "the run's section");
    // The `value` column of results.csv (index 4) sorts; the method filter (index 1) narrows.
    check_page(&chromium, &page, &s.path("reports/results.csv"), "results", "value", 1, "report.png");
}

#[test]
fn a_label_with_a_script_is_shown_as_text_and_a_diff_and_a_sweep_page_work_too() {
    let Some(chromium) = chromium() else { return };
    let hostile = "Noise <script>window.__pwned = 1</script> & <b>bold</b>";
    let s = crate::shared::copy_of_built();
    let before = last_json(&s.oodpipe(&["runs", "--json"]));
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    config["ood"]["gaussian"].as_table_mut().unwrap().insert("label".into(), hostile.into());
    s.write_config(&config);
    ok(&s.oodpipe(&["run"]));
    let page = s.path("reports/report.html");
    let got = probe(
        &chromium,
        &page,
        "var pre = document.createElement('pre'); pre.id = 'probe';\
         pre.textContent = JSON.stringify({pwned: window.__pwned === 1, text: document.body.textContent.indexOf(\"Noise <script>window.__pwned = 1<\\/script> & <b>bold</b>\") >= 0, errors: window.__errors});\
         document.body.appendChild(pre);",
    );
    assert_eq!(got["pwned"], false, "the label's script ran");
    assert_eq!(got["text"], true, "the label is not shown as text");
    // A diff of the two runs (the label changed: the Gaussian rows are added and removed), as a page.
    let runs = last_json(&s.oodpipe(&["runs", "--json"]));
    let (old, new) = (before[0]["id"].as_str().unwrap().to_string(), runs[0]["id"].as_str().unwrap().to_string());
    let diff_page = s.path("diff.html");
    ok(&s.oodpipe(&["diff", &old, &new, "--html", diff_page.to_str().unwrap()]));
    let got = probe(&chromium, &diff_page, &table_probe("changed", "Old [95%]", 0, hostile));
    assert!(strings(&got["errors"]).is_empty(), "{:?}", got["errors"]);
    assert!(!strings(&got["shown"]).is_empty() && strings(&got["shown"]).iter().all(|v| v == hostile), "{:?}", got["shown"]);
    // A sweep's page: every row of its sweep.csv.
    let out = s.oodpipe(&["--sweep", "methods.vib.beta=0.005,0.02", "run"]);
    ok(&out);
    let dir = s.path("reports/sweeps/methods.vib.beta");
    check_page(&chromium, &dir.join("report.html"), &dir.join("sweep.csv"), "sweep", "value", 3, "sweep.png");
}
