//! Tidy checks over the source files themselves (no server), in the manner of rust-analyzer's
//! `tidy.rs`: the storage catalog and `docs/storage.md` list the same tables, handlers under
//! `src/api/` never name the catalog, and non-test code under `src/` has no `.unwrap()` or
//! `.expect(` (see `docs/architecture.md`, "Checks").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, sorted (bounded by the tree: no links are followed).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let entry = entry.unwrap();
            let (path, kind) = (entry.path(), entry.file_type().unwrap());
            if kind.is_dir() {
                todo.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// The source with comments removed and the insides of string and char literals blanked,
/// line structure kept (so line numbers still match). Good enough for Rust as this crate writes
/// it: `'{'` is a char, `'a` a lifetime; raw strings are `r"…"` / `r#"…"#`.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < c.len() && !(c[i] == '*' && c.get(i + 1) == Some(&'/')) {
                    if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
                i += 2;
            }
            'r' if (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
                && !c.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_') =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                out.push_str("\"\"");
                j += 1;
                let closes = |k: usize| c[k] == '"' && (1..=hashes).all(|h| c.get(k + h) == Some(&'#'));
                while j < c.len() && !closes(j) {
                    if c[j] == '\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
                i = j + 1 + hashes;
            }
            '"' => {
                out.push_str("\"\"");
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    if c.get(i) == Some(&'\n') {
                        out.push('\n');
                    }
                    i += 1;
                }
                i += 1;
            }
            '\'' if c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'') => {
                out.push_str("' '");
                // Past the quote and the character (both of an escape: `'\''`, `'\u{..}'`).
                i += if c[i + 1] == '\\' { 3 } else { 2 };
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// The (1-based) lines of `code` (from [`code_only`]) outside `#[cfg(test)]` items: the item
/// after the attribute ends at its `;` or at the `}` matching its first `{`.
fn non_test_lines(code: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(item) = lines[i].trim_start().strip_prefix("#[cfg(test)]") {
            let mut depth = 0i64;
            let mut opened = false;
            let mut j = i;
            while j < lines.len() {
                let text = if j == i { item } else { lines[j] };
                for ch in text.chars() {
                    match ch {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if (opened && depth <= 0) || (!opened && text.contains(';')) {
                    break;
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        out.push((i + 1, lines[i]));
        i += 1;
    }
    out
}

/// `name (id)` of every `Table::new(id, "name")` in the catalog.
fn catalog_tables() -> BTreeSet<String> {
    let src = read(&root().join("src/storage/catalog.rs"));
    let mut out = BTreeSet::new();
    for (at, m) in src.match_indices("Table::new(") {
        let rest = &src[at + m.len()..];
        let args = &rest[..rest.find(')').expect("Table::new(...) closes")];
        let (id, name) = args.split_once(',').expect("Table::new(id, name)");
        let name = name.trim().trim_matches('"');
        assert!(out.insert(format!("{name} ({})", id.trim())), "{name} twice in the catalog");
    }
    out
}

/// `name (id)` of every table row of `docs/storage.md`: rows that start with `` | `name` (id) ``.
fn documented_tables() -> BTreeSet<String> {
    let doc = read(&root().join("docs/storage.md"));
    let mut out = BTreeSet::new();
    for line in doc.lines() {
        let Some(rest) = line.strip_prefix("| `") else { continue };
        let Some((name, rest)) = rest.split_once("` (") else { continue };
        let Some((id, _)) = rest.split_once(')') else { continue };
        if id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty() {
            assert!(out.insert(format!("{name} ({id})")), "{name} documented twice in docs/storage.md");
        }
    }
    out
}

#[test]
fn storage_catalog_and_docs_list_the_same_tables() {
    let (catalog, documented) = (catalog_tables(), documented_tables());
    assert!(catalog.len() >= 54 && catalog.contains("counters (1)"), "catalog parse: {catalog:?}");
    let undocumented: Vec<_> = catalog.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&catalog).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "tables in src/storage/catalog.rs but not in docs/storage.md (or with another id): {undocumented:?}; \
         documented but not in the catalog: {unknown:?}"
    );
}

#[test]
fn handlers_never_name_the_storage_catalog() {
    let mut found = Vec::new();
    for path in rust_files(&root().join("src/api")) {
        let code = code_only(&read(&path));
        for (n, line) in code.lines().enumerate() {
            let word = |w: &str| {
                line.match_indices(w).any(|(at, _)| {
                    let before = line[..at].chars().next_back();
                    let after = line[at + w.len()..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            };
            if word("catalog") {
                found.push(format!("{}:{}: {}", relative(&path), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "handlers touch tables (move this into a service under src/):\n{}", found.join("\n"));
}

#[test]
fn no_unwrap_or_expect_outside_tests() {
    let mut found = Vec::new();
    for path in rust_files(&root().join("src")) {
        if path.file_name().is_some_and(|f| f.to_string_lossy().ends_with("tests.rs")) {
            continue;
        }
        let code = code_only(&read(&path));
        for (n, line) in non_test_lines(&code) {
            if line.contains(".unwrap()") || line.contains(".expect(") {
                found.push(format!("{}:{n}: {}", relative(&path), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "use `?` with `.ctx(\"what\")` / `Error::internal`, or a proven-infallible form with a comment:\n{}",
        found.join("\n")
    );
}

/// The scanner the checks above rely on: comments and literals do not count, test items are
/// skipped, the code after them is seen again.
#[test]
fn tidy_scanner_skips_comments_literals_and_test_items() {
    let src = r#"fn a() { x.unwrap(); } // y.unwrap()
/* z.expect("") */ let s = "w.unwrap()"; let c = '{'; let q = '\'';
#[cfg(test)]
mod tests {
    fn t() { if true { v.unwrap(); } }
}
#[cfg(test)]
use foo::bar;
fn b<'a>(s: &'a str) { s.expect("after the tests") }
"#;
    let code = code_only(src);
    let hits: Vec<usize> = non_test_lines(&code)
        .into_iter()
        .filter(|(_, l)| l.contains(".unwrap()") || l.contains(".expect("))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(hits, [1, 9]);
    assert_eq!(code.lines().nth(1), Some(" let s = \"\"; let c = ' '; let q = ' ';"));
}
