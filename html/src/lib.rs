//! The frame of oodpipe's HTML reports (`report.html` beside every report's Markdown, and
//! `oodpipe diff --html`): one self-contained file that opens from `file://` with nothing fetched
//! (no CDN, no font, no image by URL), its style, and the one small script that sorts and filters
//! its tables.
//!
//! Why a crate of its own: the report stage (in the worker) and the command (`oodpipe diff`, and
//! the run's section that the command writes into a published page) both make pages, and neither
//! should carry the other's dependencies. It knows nothing of what the numbers are: callers hand it
//! cells whose text they formatted themselves (the same text their Markdown shows), so the page
//! and the Markdown cannot disagree.
//!
//! Everything a caller gives goes through maud's templates, which escape it: a label of
//! `<script>` in a config shows as text. An SVG figure drawn by the report's own code (plotters)
//! is the one thing inserted as markup ([`Figure`]), after a check that it holds no script.
//!
//! The script: a click on a header of a table marked `sortable` sorts its rows by that column
//! (by `data-sort` when a cell has one, numerically where both are numbers, else as text; again
//! reverses); a `select` of a table's filter bar shows only the rows whose column has that value.
//! Every failure of the page's script is written into the page (`#errors`), so a test that loads it
//! in a browser sees it.

pub use maud::{Markup, PreEscaped, html};

/// The page's file name in a report folder.
pub const PAGE: &str = "report.html";

/// Where the command writes the run's section (config, platform, commit, stage times, the DAG)
/// into a published page; the report stage cannot know them when it builds.
pub const RUN_MARKER: &str = "<!-- oodpipe:run -->";

/// A table cell: its text, and optionally the value it sorts by and what a hover shows (the
/// interval, the test, the paper's number).
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub text: String,
    pub sort: Option<String>,
    pub title: Option<String>,
    /// A class for colour (`holds`, `reversed`, `open`).
    pub class: Option<&'static str>,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), ..Default::default() }
    }

    /// A number shown as `text` and sorted by `value`.
    pub fn number(text: impl Into<String>, value: f64) -> Cell {
        Cell { text: text.into(), sort: Some(value.to_string()), ..Default::default() }
    }

    pub fn titled(mut self, title: impl Into<String>) -> Cell {
        self.title = Some(title.into());
        self
    }

    pub fn classed(mut self, class: &'static str) -> Cell {
        self.class = Some(class);
        self
    }
}

/// A table that sorts by any column and filters by the columns named in `filters` (their
/// headers): the page's script does both.
pub struct Table {
    pub id: String,
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Column indices to offer a filter for.
    pub filters: Vec<usize>,
}

impl Table {
    pub fn markup(&self) -> Markup {
        let options = |column: usize| {
            let mut values: Vec<&str> = Vec::new();
            for row in &self.rows {
                if let Some(cell) = row.get(column)
                    && !values.contains(&cell.text.as_str())
                {
                    values.push(&cell.text);
                }
            }
            values
        };
        html! {
            @if !self.filters.is_empty() {
                div.filters data-for=(&self.id) {
                    @for &column in &self.filters {
                        label {
                            (self.headers[column]) " "
                            select data-column=(column) {
                                option value="" { "all" }
                                @for value in options(column) {
                                    option value=(value) { (value) }
                                }
                            }
                        }
                    }
                }
            }
            table.sortable id=(&self.id) {
                @if !self.caption.is_empty() { caption { (&self.caption) } }
                thead { tr { @for h in &self.headers { th title="sort" { (h) } } } }
                tbody {
                    @for row in &self.rows {
                        tr {
                            @for cell in row {
                                td data-sort=[cell.sort.as_deref()] title=[cell.title.as_deref()] class=[cell.class] { (cell.text) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// An SVG drawn by the report's own code, inserted as markup.
pub struct Figure {
    pub caption: String,
    svg: String,
}

impl Figure {
    /// `svg`: an SVG document; what comes before its `<svg` element (an XML declaration, a
    /// doctype, comments) is dropped. None if it holds what a figure of ours never does (a script,
    /// an event handler, a reference out of the page).
    pub fn new(caption: impl Into<String>, svg: &str) -> Option<Figure> {
        let body = svg.find("<svg").map_or("", |at| svg[at..].trim());
        let lower = body.to_ascii_lowercase();
        let unsafe_markup = ["<script", "javascript:", " on", "href=\"http", "xlink:href=\"http", "<foreignobject"].iter().any(|bad| {
            if *bad == " on" { lower.split_whitespace().any(|w| w.starts_with("on") && w.contains('=')) } else { lower.contains(bad) }
        });
        (body.starts_with("<svg") && !unsafe_markup).then(|| Figure { caption: caption.into(), svg: body.to_string() })
    }

    pub fn markup(&self) -> Markup {
        html! { figure { (PreEscaped(&self.svg)) figcaption { (self.caption) } } }
    }
}

/// A whole page: `title`, and `body` inside it, with the style and the script.
pub fn page(title: &str, body: Markup) -> String {
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                pre #errors hidden {}
                (body)
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
    .into_string()
}

/// A verdict's class, for its colour.
pub fn verdict_class(verdict: &str) -> &'static str {
    if verdict.starts_with("holds") {
        "holds"
    } else if verdict.starts_with("reversed") {
        "reversed"
    } else {
        "open"
    }
}

const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1, h2, h3 { line-height: 1.2; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.asc::after { content: " ▲"; } th.desc::after { content: " ▼"; }
td[title] { text-decoration: underline dotted #999; }
tr.hidden { display: none; }
.filters { margin: 0.5em 0; } .filters label { margin-right: 1em; }
.holds { background: #e3f4e3; } .reversed { background: #fbe1e1; } .open { background: #f3f3f3; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure svg { max-width: 560px; height: auto; }
figcaption { font-size: 0.9em; color: #555; }
#errors { color: #a00; }
"#;

const SCRIPT: &str = r#"
(function () {
  var errors = document.getElementById('errors');
  function report(message) { errors.hidden = false; errors.textContent += message + '\n'; }
  window.addEventListener('error', function (e) { report(String(e.message)); });
  function key(cell) { return cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : cell.textContent.trim(); }
  function compare(a, b) {
    var x = parseFloat(a), y = parseFloat(b), blank_x = isNaN(x), blank_y = isNaN(y);
    if (!blank_x && !blank_y) { return x - y; }
    if (blank_x !== blank_y) { return blank_x ? 1 : -1; }
    return a.localeCompare(b);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th, column) {
      th.addEventListener('click', function () {
        var ascending = !th.classList.contains('asc');
        table.querySelectorAll('thead th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
        th.classList.add(ascending ? 'asc' : 'desc');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var c = compare(key(r.cells[column]), key(s.cells[column]));
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll('.filters').forEach(function (bar) {
    var table = document.getElementById(bar.getAttribute('data-for'));
    var selects = bar.querySelectorAll('select');
    function apply() {
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var shown = Array.prototype.every.call(selects, function (s) {
          return s.value === '' || row.cells[+s.getAttribute('data-column')].textContent.trim() === s.value;
        });
        row.classList.toggle('hidden', !shown);
      });
    }
    selects.forEach(function (s) { s.addEventListener('change', apply); s.addEventListener('input', apply); });
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_caller_gives_is_escaped() {
        let table = Table {
            id: "t".into(),
            caption: "<b>caption</b>".into(),
            headers: vec!["<script>alert(1)</script>".into()],
            rows: vec![vec![Cell::text("<img src=x onerror=alert(1)>").titled("\"><script>")]],
            filters: vec![0],
        };
        let page = page("<title>", table.markup());
        assert!(!page.contains("<script>alert") && !page.contains("<img src=x"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // The page's own script is there, once.
        assert_eq!(page.matches("<script>").count(), 1);
    }

    #[test]
    fn a_figure_with_a_script_or_a_handler_is_refused() {
        let svg = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><text>ROC</text></svg>";
        assert!(Figure::new("ok", svg).unwrap().markup().into_string().starts_with("<figure><svg"));
        assert!(Figure::new("bad", "<svg><script>alert(1)</script></svg>").is_none());
        assert!(Figure::new("bad", "<svg><rect onload=\"alert(1)\"/></svg>").is_none());
        assert!(Figure::new("bad", "<div>not svg</div>").is_none());
        // Graphviz's: a doctype and a comment before the element.
        let dot = "<?xml version=\"1.0\"?>\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\">\n<!-- Generated by graphviz -->\n<svg width=\"8pt\"><g/></svg>";
        assert!(Figure::new("dag", dot).unwrap().markup().into_string().starts_with("<figure><svg width"));
    }
}
