//! Writing a property list as XML, by hand: the subset launchd job definitions use
//! (dictionaries, arrays, strings, integers, booleans).
//!
//! Apple's format (`plutil -convert xml1` writes the same layout): the XML declaration,
//! the `PropertyList-1.0` doctype, one `<plist version="1.0">` root, tabs for indentation,
//! `<true/>`/`<false/>` for booleans. Text is escaped (`&`, `<`, `>`); characters XML 1.0
//! cannot carry at all (control characters other than tab, newline and carriage return)
//! are refused rather than written into a file launchd would reject. Dictionary keys keep
//! the order they were given in, so that the same service always gives the same bytes
//! (and `install` can tell "unchanged" by comparing them).
//!
//! Why not the `plist` crate's writer: forty lines against a dependency tree (quick-xml,
//! time, base64, indexmap) in the CLI; the tests parse our output with that crate, so
//! the format is still checked by an independent reader.

use std::fmt::Write;

/// A property-list value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    String(String),
    Integer(i64),
    Bool(bool),
    Array(Vec<Value>),
    /// Key/value pairs in the order they are written.
    Dict(Vec<(String, Value)>),
}

/// The whole document: header, `comment` (if any) as an XML comment before the root,
/// then `root`. Errors name the text that cannot be written.
pub fn document(comment: Option<&str>, root: &Value) -> Result<String, String> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
    );
    if let Some(c) = comment {
        // `--` may not appear inside an XML comment.
        let c = c.replace("--", "- -");
        check_text(&c)?;
        out.push_str("<!--\n");
        for line in c.lines() {
            let _ = writeln!(out, "  {line}");
        }
        out.push_str("-->\n");
    }
    out.push_str("<plist version=\"1.0\">\n");
    value(&mut out, root, 0)?;
    out.push_str("</plist>\n");
    Ok(out)
}

fn value(out: &mut String, v: &Value, depth: usize) -> Result<(), String> {
    let indent = "\t".repeat(depth);
    match v {
        Value::String(s) => {
            let _ = writeln!(out, "{indent}<string>{}</string>", escape(s)?);
        }
        Value::Integer(n) => {
            let _ = writeln!(out, "{indent}<integer>{n}</integer>");
        }
        Value::Bool(b) => {
            let _ = writeln!(out, "{indent}<{b}/>");
        }
        Value::Array(items) if items.is_empty() => {
            let _ = writeln!(out, "{indent}<array/>");
        }
        Value::Array(items) => {
            let _ = writeln!(out, "{indent}<array>");
            for item in items {
                value(out, item, depth + 1)?;
            }
            let _ = writeln!(out, "{indent}</array>");
        }
        Value::Dict(entries) if entries.is_empty() => {
            let _ = writeln!(out, "{indent}<dict/>");
        }
        Value::Dict(entries) => {
            let _ = writeln!(out, "{indent}<dict>");
            for (k, item) in entries {
                let _ = writeln!(out, "{indent}\t<key>{}</key>", escape(k)?);
                value(out, item, depth + 1)?;
            }
            let _ = writeln!(out, "{indent}</dict>");
        }
    }
    Ok(())
}

/// `text` with `&`, `<` and `>` escaped; an error for characters XML cannot hold.
fn escape(text: &str) -> Result<String, String> {
    check_text(text)?;
    Ok(text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;"))
}

fn check_text(text: &str) -> Result<(), String> {
    match text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(format!(
            "{text:?}: control character U+{:04X} cannot be written in a property list",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_are_indented_with_tabs_in_the_given_order() {
        let doc = document(
            None,
            &Value::Dict(vec![
                ("Label".into(), Value::String("a<b&c>".into())),
                (
                    "KeepAlive".into(),
                    Value::Dict(vec![("SuccessfulExit".into(), Value::Bool(false))]),
                ),
                ("Args".into(), Value::Array(vec![Value::Integer(-3)])),
                ("Empty".into(), Value::Array(vec![])),
            ]),
        )
        .unwrap();
        let body = doc.split_once("<plist version=\"1.0\">\n").unwrap().1;
        assert_eq!(
            body,
            "<dict>\n\
             \t<key>Label</key>\n\
             \t<string>a&lt;b&amp;c&gt;</string>\n\
             \t<key>KeepAlive</key>\n\
             \t<dict>\n\
             \t\t<key>SuccessfulExit</key>\n\
             \t\t<false/>\n\
             \t</dict>\n\
             \t<key>Args</key>\n\
             \t<array>\n\
             \t\t<integer>-3</integer>\n\
             \t</array>\n\
             \t<key>Empty</key>\n\
             \t<array/>\n\
             </dict>\n\
             </plist>\n"
        );
    }

    #[test]
    fn control_characters_are_refused_and_comments_stay_comments() {
        let err = document(None, &Value::String("a\u{1}b".into())).unwrap_err();
        assert!(err.contains("U+0001"), "{err}");
        let doc = document(Some("one -- two"), &Value::Bool(true)).unwrap();
        assert!(doc.contains("<!--\n  one - - two\n-->\n"), "{doc}");
    }
}
