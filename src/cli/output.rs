//! Human output of the CLI: aligned tables and a few fixed layouts; JSON printing for `--json`.

use serde_json::Value;

/// Prints pretty JSON on stdout.
pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

/// A JSON value as table text: strings bare, null as `-`.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Left-aligned columns separated by two spaces; every line ends in a newline.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// `ops=1.1.0 sql=1.0.0 …` for one release.
pub fn component_summary(release: &Value) -> String {
    release["components"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{}={}", text(&c["component"]), text(&c["version"])))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The component table of one release.
pub fn release_components(release: &Value) -> String {
    let rows = release["components"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let image = match (&c["image"], &c["image_tag"]) {
                (Value::String(i), Value::String(t)) => format!("{i}:{t}"),
                _ => "- (shared)".into(),
            };
            vec![text(&c["component"]), text(&c["version"]), text(&c["git_tag"]), image]
        })
        .collect();
    table(&["COMPONENT", "VERSION", "GIT TAG", "IMAGE"], rows)
}

/// One environment: header lines, then its hosts.
pub fn environment(env: &Value) -> String {
    let mut out = format!("{}  tier {}  domain {}\n", text(&env["name"]), text(&env["tier"]), text(&env["domain"]));
    if let Some(vars) = env["variables"].as_object().filter(|v| !v.is_empty()) {
        let list: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
        out.push_str(&format!("variables: {}\n", list.join(" ")));
    }
    let rows = env["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| vec![text(&h["name"]), text(&h["address"]), text(&h["port"]), text(&h["user"])])
        .collect();
    out.push_str(&table(&["HOST", "ADDRESS", "PORT", "USER"], rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "LONGER"], vec![vec!["xxxx".into(), "y".into()], vec!["z".into(), "".into()]]);
        assert_eq!(t, "A     LONGER\nxxxx  y\nz\n");
    }
}
