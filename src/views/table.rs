//! Human tables, as kubectl prints them: upper-case headers, columns padded to the widest
//! cell, three spaces apart, `<none>` for an empty cell.

/// The table of `rows` under `headers`, one line each, newline-terminated.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = std::iter::once(headers.iter().map(|h| h.to_string()).collect())
        .chain(rows.iter().map(|r| {
            r.iter()
                .map(|c| {
                    if c.is_empty() {
                        "<none>".to_string()
                    } else {
                        c.clone()
                    }
                })
                .collect()
        }))
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 3;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_empty_cells_say_none() {
        let t = render(
            &["NAME", "PEERS"],
            &[
                vec!["web".into(), "n1 → 10.0.0.1".into()],
                vec!["a-long-name".into(), String::new()],
            ],
        );
        assert_eq!(
            t,
            "NAME          PEERS\nweb           n1 → 10.0.0.1\na-long-name   <none>\n"
        );
    }
}
