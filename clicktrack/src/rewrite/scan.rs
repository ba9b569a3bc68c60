//! Finding the links of a body: `<a href>` in HTML (entities decoded,
//! `data-untracked` and `{{untracked:URL}}` respected) and bare http(s) URLs
//! in text, each handed to a callback that may replace it.

use std::borrow::Cow;

use super::{UNTRACKED_ATTRIBUTE, UNTRACKED_CLOSE, UNTRACKED_OPEN};

/// Called with each trackable URL (decoded); returns its replacement, if any.
pub(super) type OnLink<'a> = dyn FnMut(&str) -> Option<String> + 'a;

pub(super) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn is_trackable(url: &str) -> bool {
    let rest = strip_prefix_ci(url, "https://").or_else(|| strip_prefix_ci(url, "http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

fn find_from(haystack: &str, from: usize, needle: &str) -> Option<usize> {
    haystack.get(from..)?.find(needle).map(|p| from + p)
}

fn find_ci_from(haystack: &str, from: usize, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    (from..=h.len().checked_sub(n.len())?).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

pub(super) fn rfind_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    (0..=h.len().checked_sub(n.len())?)
        .rev()
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// If `s` at `at` starts a complete `{{untracked:URL}}`, the URL's range and
/// the index after the marker.
fn untracked_marker(s: &str, at: usize) -> Option<(usize, usize, usize)> {
    if !s.get(at..)?.starts_with(UNTRACKED_OPEN) {
        return None;
    }
    let start = at + UNTRACKED_OPEN.len();
    let end = find_from(s, start, UNTRACKED_CLOSE)?;
    Some((start, end, end + UNTRACKED_CLOSE.len()))
}

/// Output under construction: the input up to `copied` has been accounted for.
struct Splice<'s> {
    input: &'s str,
    out: String,
    copied: usize,
}

impl<'s> Splice<'s> {
    fn new(input: &'s str) -> Self {
        Splice {
            input,
            out: String::with_capacity(input.len() + input.len() / 4),
            copied: 0,
        }
    }

    /// Emits the input up to `start`, then `with` instead of `start..end`.
    fn replace(&mut self, start: usize, end: usize, with: &str) {
        self.out.push_str(&self.input[self.copied..start]);
        self.out.push_str(with);
        self.copied = end;
    }

    fn finish(mut self) -> String {
        self.out.push_str(&self.input[self.copied..]);
        self.out
    }
}

pub(super) fn scan_html(html: &str, on_link: &mut OnLink<'_>) -> String {
    let b = html.as_bytes();
    let mut splice = Splice::new(html);
    let mut i = 0;
    while let Some(p) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(|&c| c == b'<' || c == b'{'))
    {
        i += p;
        if b[i] == b'{' {
            match untracked_marker(html, i) {
                Some((start, end, after)) => {
                    let url = &html[start..end];
                    splice.replace(i, after, url);
                    i = after;
                }
                None => i += 1,
            }
        } else if b[i..].starts_with(b"<!--") {
            i = find_from(html, i + 4, "-->").map_or(b.len(), |e| e + 3);
        } else if b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            i = scan_tag(html, i, &mut splice, on_link);
        } else {
            i += 1;
        }
    }
    splice.finish()
}

/// Parses the start tag at `start` (`<` followed by a letter), rewrites its
/// `href` if it is a tracked link, and returns the index just after it (or
/// after the closing tag of `script`/`style`).
fn scan_tag(html: &str, start: usize, splice: &mut Splice<'_>, on_link: &mut OnLink<'_>) -> usize {
    let b = html.as_bytes();
    let len = b.len();
    let is_space = |c: u8| c.is_ascii_whitespace();
    let mut j = start + 1;
    while j < len && !(is_space(b[j]) || b[j] == b'>' || b[j] == b'/') {
        j += 1;
    }
    let name = &html[start + 1..j];
    let is_link = name.eq_ignore_ascii_case("a") || name.eq_ignore_ascii_case("area");
    let mut href: Option<(usize, usize, bool)> = None;
    let mut untracked = false;
    loop {
        while j < len && (is_space(b[j]) || b[j] == b'/') {
            j += 1;
        }
        if j >= len {
            // Unterminated tag: leave the rest alone.
            return len;
        }
        if b[j] == b'>' {
            j += 1;
            break;
        }
        let name_start = j;
        j += 1; // an attribute name may start with '='
        while j < len && !(is_space(b[j]) || matches!(b[j], b'=' | b'>' | b'/')) {
            j += 1;
        }
        let attr = &html[name_start..j];
        let mut k = j;
        while k < len && is_space(b[k]) {
            k += 1;
        }
        let mut value = None;
        if k < len && b[k] == b'=' {
            k += 1;
            while k < len && is_space(b[k]) {
                k += 1;
            }
            if k < len && (b[k] == b'"' || b[k] == b'\'') {
                let quote = b[k];
                let Some(p) = b[k + 1..].iter().position(|&c| c == quote) else {
                    return len;
                };
                value = Some((k + 1, k + 1 + p, true));
                j = k + 1 + p + 1;
            } else {
                let vs = k;
                while k < len && !(is_space(b[k]) || b[k] == b'>') {
                    k += 1;
                }
                value = Some((vs, k, false));
                j = k;
            }
        }
        if is_link {
            if attr.eq_ignore_ascii_case("href") && href.is_none() {
                href = value;
            } else if attr.eq_ignore_ascii_case(UNTRACKED_ATTRIBUTE) {
                untracked = true;
            }
        }
    }
    if let Some((vs, ve, quoted)) = href {
        let raw = &html[vs..ve];
        if let Some(inner) = raw
            .strip_prefix(UNTRACKED_OPEN)
            .and_then(|r| r.strip_suffix(UNTRACKED_CLOSE))
        {
            splice.replace(vs, ve, inner);
        } else if !untracked {
            let decoded = unescape_html(raw);
            let url = decoded.trim_matches(|c: char| c.is_ascii_whitespace());
            if is_trackable(url)
                && let Some(new) = on_link(url)
            {
                let escaped = escape_html(&new);
                if quoted {
                    splice.replace(vs, ve, &escaped);
                } else {
                    splice.replace(vs, ve, &format!("\"{escaped}\""));
                }
            }
        }
    }
    if name.eq_ignore_ascii_case("script") || name.eq_ignore_ascii_case("style") {
        let close = if name.eq_ignore_ascii_case("script") {
            "</script"
        } else {
            "</style"
        };
        return find_ci_from(html, j, close).unwrap_or(len);
    }
    j
}

pub(super) fn scan_text(text: &str, on_link: &mut OnLink<'_>) -> String {
    let b = text.as_bytes();
    let mut splice = Splice::new(text);
    let mut i = 0;
    while let Some(p) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(|&c| matches!(c, b'h' | b'H' | b'{')))
    {
        i += p;
        if b[i] == b'{' {
            match untracked_marker(text, i) {
                Some((start, end, after)) => {
                    splice.replace(i, after, &text[start..end]);
                    i = after;
                }
                None => i += 1,
            }
            continue;
        }
        let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'/');
        if !starts_word || !is_url_start(&text[i..]) {
            i += 1;
            continue;
        }
        let end = text_url_end(b, i);
        let url = &text[i..end];
        if is_trackable(url)
            && let Some(new) = on_link(url)
        {
            splice.replace(i, end, &new);
        }
        i = end.max(i + 1);
    }
    splice.finish()
}

fn is_url_start(s: &str) -> bool {
    strip_prefix_ci(s, "http://").is_some() || strip_prefix_ci(s, "https://").is_some()
}

/// Where the URL starting at `start` ends in plain text.
fn text_url_end(b: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < b.len() && b[end].is_ascii_graphic() && !matches!(b[end], b'<' | b'>' | b'"' | b'`')
    {
        end += 1;
    }
    // Trailing punctuation belongs to the sentence, and a closing bracket
    // only to the URL if it opened one.
    while end > start {
        let last = b[end - 1];
        let url = &b[start..end];
        let count = |c: u8| url.iter().filter(|&&x| x == c).count();
        let trim = match last {
            b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'' | b'*' => true,
            b')' => count(b')') > count(b'('),
            b']' => count(b']') > count(b'['),
            _ => false,
        };
        if !trim {
            break;
        }
        end -= 1;
    }
    end
}

/// Decodes the character references a browser would decode in an attribute
/// value (the common named ones and numeric ones, `;` required). Unknown
/// references stay as written.
fn unescape_html(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.as_bytes()[1..rest.len().min(12)]
            .iter()
            .position(|&c| c == b';')
            .and_then(|semi| decode_reference(&rest[1..1 + semi]).map(|c| (c, semi + 2)));
        match decoded {
            Some((c, used)) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn decode_reference(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|&c| c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "sol" => '/',
        "colon" => ':',
        "quest" => '?',
        "equals" => '=',
        "num" => '#',
        "percnt" => '%',
        "plus" => '+',
        _ => return None,
    })
}

fn escape_html(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '"', '\'', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
