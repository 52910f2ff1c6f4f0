//! nplab's `#ifdef NAME` / `#ifndef NAME` / `#else` / `#endif`. Directive lines and the lines they exclude are
//! blanked out (newlines kept), so every byte offset, and so every span and line number, stays that of the file.

use super::ast::Span;
use std::collections::BTreeMap;

/// An error: where, what, and a hint.
pub type PreprocessError = (Span, String, Option<String>);

/// Applies the conditionals for the symbols in `defines`.
pub fn preprocess(text: &str, defines: &BTreeMap<String, String>) -> Result<String, PreprocessError> {
    let mut out = String::with_capacity(text.len());
    // Each open block: (its span, whether its branch is taken, whether an #else was seen).
    let mut stack: Vec<(Span, bool, bool)> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let span = Span::new(offset, offset + line.trim_end().len());
        offset += line.len();
        let trimmed = line.trim();
        let active = stack.iter().all(|(_, taken, _)| *taken);
        let mut words = trimmed.split_whitespace();
        let directive = words.next().filter(|w| w.starts_with('#'));
        let blank = |out: &mut String| out.extend(line.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
        match directive {
            Some(d @ ("#ifdef" | "#ifndef")) => {
                let Some(name) = words.next() else {
                    return Err((span, format!("{d} needs a symbol"), Some("e.g. #ifdef Linux".into())));
                };
                let defined = defines.contains_key(name);
                stack.push((span, if d == "#ifdef" { defined } else { !defined }, false));
                blank(&mut out);
            }
            Some("#else") => {
                let Some(top) = stack.last_mut() else {
                    return Err((span, "#else without #ifdef".into(), None));
                };
                if top.2 {
                    return Err((span, "a second #else in one #ifdef".into(), None));
                }
                top.1 = !top.1;
                top.2 = true;
                blank(&mut out);
            }
            Some("#endif") => {
                if stack.pop().is_none() {
                    return Err((span, "#endif without #ifdef".into(), None));
                }
                blank(&mut out);
            }
            Some(d) if d.starts_with("#if") || d == "#define" || d == "#include" => {
                return Err((
                    span,
                    format!("unsupported preprocessor directive {d}"),
                    Some("tcpdrill understands #ifdef, #ifndef, #else and #endif".into()),
                ));
            }
            _ if active => out.push_str(line),
            _ => blank(&mut out),
        }
    }
    if let Some((span, _, _)) = stack.pop() {
        return Err((span, "#ifdef without #endif".into(), Some("close the block with #endif".into())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_offsets_and_selects() {
        let src = "a\n#ifdef Linux\nb\n#else\nc\n#endif\nd\n";
        let linux: BTreeMap<_, _> = [("Linux".to_string(), String::new())].into();
        let out = preprocess(src, &linux).unwrap();
        assert_eq!(out.len(), src.len());
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["a", "b", "d"]);
        let out = preprocess(src, &BTreeMap::new()).unwrap();
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["a", "c", "d"]);
    }

    #[test]
    fn unbalanced() {
        assert!(preprocess("#ifdef X\n", &BTreeMap::new()).unwrap_err().1.contains("without #endif"));
        assert!(preprocess("#endif\n", &BTreeMap::new()).unwrap_err().1.contains("without #ifdef"));
    }
}
