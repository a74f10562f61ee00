//! What a stage may call its outputs.
//!
//! An output's name becomes a path twice: in the store (only its extension, objects are named by
//! digest) and in a publish folder (`reports/<name>`), which is inside the user's git work tree.
//! An entry is data that may come from anywhere (a shared remote store, a hand-edited cache), so a
//! name is checked wherever an entry is read or written, not only where a stage makes its files:
//! a name like `.git/config` or `.git/hooks/x` published into `reports/` would make a nested
//! repository whose configuration git runs on the next `git status` there.
//!
//! The rule is deliberately narrow, the names stages really use and nothing else: components of
//! ASCII letters, digits, `_`, `-`, `.`, `+`, `@` and `=` (a sweep's `zeta=0.2`), joined by `/`; no
//! component empty or starting with `.` (so no `.git`, `..`, `.hidden`, in any case); at most
//! [`MAX_COMPONENT`] bytes a component, [`MAX_DEPTH`] components and [`MAX_NAME`] bytes in all.
//! A publishing stage may not name what the engine writes beside its outputs ([`BESIDE_PUBLISHED`]),
//! so an entry cannot replace the run's own record.

/// `run.json` beside a published report: which config, code and platform made it.
pub const RUN_RECORD: &str = "run.json";
/// The stage graph, drawn beside a published report.
pub const DAG_DOT: &str = "dag.dot";
pub const DAG_SVG: &str = "dag.svg";
/// Files the engine writes into a publish folder itself: no stage's output may take their names.
pub const BESIDE_PUBLISHED: [&str; 3] = [RUN_RECORD, DAG_DOT, DAG_SVG];

pub const MAX_NAME: usize = 200;
pub const MAX_COMPONENT: usize = 100;
pub const MAX_DEPTH: usize = 4;

/// Why `name` is not a name a stage may give an output, in words, or `Ok`. Every character that
/// is not printable ASCII is shown escaped, so the message itself is safe on a terminal.
pub fn check(name: &str) -> Result<(), String> {
    let shown = || escaped(name);
    if name.is_empty() {
        return Err("an output with an empty name".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "an output name of {} bytes (at most {MAX_NAME}): `{}…`",
            name.len(),
            escaped(&name[..name.floor_char_boundary(40)])
        ));
    }
    if let Some(c) = name.chars().find(|&c| !(c.is_ascii_alphanumeric() || "_-.+@=/".contains(c))) {
        return Err(format!(
            "the output name `{}` has the character {}; names are ASCII letters, digits and _ - . + @ = joined by /",
            shown(),
            escaped(&c.to_string())
        ));
    }
    let components: Vec<&str> = name.split('/').collect();
    if components.len() > MAX_DEPTH {
        return Err(format!("the output name `{}` is {} folders deep (at most {MAX_DEPTH} components)", shown(), components.len()));
    }
    for c in components {
        if c.is_empty() {
            return Err(format!("the output name `{}` has an empty component", shown()));
        }
        if c.starts_with('.') {
            return Err(format!(
                "the output name `{}` has the component `{c}`, which starts with `.` (hidden files, `..` and `.git` are refused)",
                shown()
            ));
        }
        if c.len() > MAX_COMPONENT {
            return Err(format!(
                "the output name `{}…` has a component of {} bytes (at most {MAX_COMPONENT})",
                &name[..40.min(name.len())],
                c.len()
            ));
        }
    }
    Ok(())
}

/// [`check`], and for a stage that publishes, none of the names the engine writes beside its outputs.
pub fn check_output(name: &str, publishes: bool) -> Result<(), String> {
    check(name)?;
    if publishes && BESIDE_PUBLISHED.contains(&name) {
        return Err(format!("the output name `{name}` is written by oodpipe beside a published report; a stage may not make it"));
    }
    Ok(())
}

/// `text` with every character outside printable ASCII written as an escape (`\u{1b}`), so that
/// what a remote server or a remote entry says cannot move the cursor, recolour or retitle a
/// terminal when it is printed.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// [`escaped`] line by line: the line breaks of a multi-line message stay.
pub fn escaped_lines(text: &str) -> String {
    text.split('\n').map(escaped).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_stages_use_pass() {
        for name in [
            "model.safetensors",
            "figures/hist_odin_tin_crop.svg",
            "README.md",
            "scores.safetensors",
            "points/train.bin@zeta=0.2/metrics.json",
            "seeds/table1+ci.md",
        ] {
            assert_eq!(check(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn hidden_traversing_long_and_strange_names_are_refused_each_saying_why() {
        let refused = |name: &str, why: &str| {
            let e = check(name).expect_err(name);
            assert!(e.contains(why), "{name}: {e}");
        };
        refused(".git/config", "starts with `.`");
        refused(".GIT/HEAD", "starts with `.`");
        refused("reports/.git/hooks/post-checkout", "starts with `.`");
        refused(".hidden", "starts with `.`");
        refused("../escape", "starts with `.`");
        refused("a/./b", "starts with `.`");
        refused("/etc/passwd", "empty component");
        refused("a//b", "empty component");
        refused("a/", "empty component");
        refused("", "empty name");
        refused(&"x".repeat(300), "300 bytes");
        refused(&format!("{}/y", "x".repeat(101)), "component of 101 bytes");
        refused("a/b/c/d/e", "5 folders deep");
        refused("bell\u{7}.txt", "\\u{7}");
        refused("esc\u{1b}[31m.txt", "\\u{1b}");
        refused("new\nline", "\\n");
        refused("space name", "character  ");
        refused("back\\slash", "the character \\;");
        refused("ünïcode", "\\u{fc}");
        refused("colon:name", ":");
        assert!(!check("esc\u{1b}[31m.txt").unwrap_err().contains('\u{1b}'), "the message itself is escaped");
    }

    #[test]
    fn a_publishing_stage_may_not_make_what_the_engine_writes_beside_it() {
        for name in BESIDE_PUBLISHED {
            assert!(check_output(name, true).unwrap_err().contains("written by oodpipe"));
            assert_eq!(check_output(name, false), Ok(()));
        }
        assert_eq!(check_output("figures/run.json", true), Ok(()));
    }

    #[test]
    fn escaping_leaves_plain_text_and_shows_the_rest() {
        assert_eq!(escaped("403 Forbidden: AccessDenied"), "403 Forbidden: AccessDenied");
        assert_eq!(escaped("a\u{1b}]0;owned\u{7}b"), "a\\u{1b}]0;owned\\u{7}b");
        assert_eq!(escaped("tab\there"), "tab\\there");
        assert_eq!(escaped_lines("one\n\u{1b}[2Jtwo"), "one\n\\u{1b}[2Jtwo");
    }
}
