//! `command = "redis-server --port 6380"`: a command line split into words the way a
//! POSIX shell splits it — whitespace separates, '…' and "…" quote, \ escapes — with no
//! expansion of any kind ($VAR, globs, ~ stay as written). For a shell, write
//! `command = ["/bin/sh", "-c", "…"]`.

/// The words of `line`, or why it cannot be split (an unclosed quote, a trailing `\`).
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started (so `''` is an empty word, not nothing).
    let mut started = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unclosed ' quote".into()),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        // Inside "…", \ escapes only what the shell lets it escape.
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unclosed \" quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unclosed \" quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    started = true;
                    word.push(c);
                }
                None => return Err("a \\ at the end escapes nothing".into()),
            },
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_like_a_shell_without_expanding() {
        assert_eq!(
            split(r#"redis-server --port 6380 --save ''"#).unwrap(),
            ["redis-server", "--port", "6380", "--save", ""]
        );
        assert_eq!(
            split(r#"sh -c "echo \"$HOME\" it's" a\ b"#).unwrap(),
            ["sh", "-c", r#"echo "$HOME" it's"#, "a b"]
        );
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert!(split("echo 'oops").unwrap_err().contains("unclosed"));
        assert!(split("echo \\").is_err());
    }
}
