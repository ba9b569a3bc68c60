//! Human output: columns aligned to their widest cell.

use serde_json::Value;

pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, the last column unpadded.
    pub fn render(&self) -> String {
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in lines {
            let last = line.len().saturating_sub(1);
            for (c, cell) in line.iter().enumerate() {
                if c == last {
                    out.push_str(cell);
                } else {
                    let pad = widths[c] - cell.chars().count();
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// A JSON value as a cell: strings bare, absent values as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(&["ID", "STATE", "NAME"]);
        table.row(vec!["spring-1".into(), "running".into(), "Spring".into()]);
        table.row(vec!["x".into(), cell(&Value::Null), "X".into()]);
        assert_eq!(
            table.render(),
            "ID        STATE    NAME\nspring-1  running  Spring\nx         -        X\n"
        );
    }
}
