//! Link tables and the rewriting of bodies and headers at send time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::token::{LinkIndex, MAX_TOKEN_LEN, MessageNo, Token};
use crate::{Error, Keyring, Result};

/// The attribute that marks an `<a>` as not to be tracked.
pub const UNTRACKED_ATTRIBUTE: &str = "data-untracked";
const UNTRACKED_OPEN: &str = "{{untracked:";
const UNTRACKED_CLOSE: &str = "}}";

/// A campaign's tracked URLs, indexed by [`LinkIndex`]. URLs are stored as the
/// browser would follow them (HTML entities decoded). A personalised URL is
/// stored as its template (`https://shop.example/{{customer}}/offer`): the
/// caller fills it per message ([`LinkTable::for_message`]) to rewrite, and
/// again to redirect.
#[derive(Clone, Debug, Default)]
pub struct LinkTable {
    urls: Vec<Arc<str>>,
    index: HashMap<Arc<str>, LinkIndex>,
}

impl LinkTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The table of a campaign template: its HTML body's tracked links, then
    /// its text body's, each distinct URL once; then, in the same order, the
    /// personalised ones (holding a `{{` placeholder). Fixed URLs come first
    /// so that their indices, in links already sent, never depend on the
    /// personalised ones.
    pub fn from_template(text: Option<&str>, html: Option<&str>) -> Result<Self> {
        let mut fixed = Vec::new();
        let mut personalised = Vec::new();
        let mut collect = |url: &str| {
            if is_personalised(url) {
                personalised.push(url.to_owned());
            } else {
                fixed.push(url.to_owned());
            }
            None
        };
        if let Some(html) = html {
            scan_html(html, &mut collect);
        }
        if let Some(text) = text {
            scan_text(text, &mut collect);
        }
        let mut table = LinkTable::new();
        for url in fixed.iter().chain(&personalised) {
            table.intern(url)?;
        }
        Ok(table)
    }

    /// This table for one message: each personalised URL replaced by
    /// `fill(url)` (the template filled with the recipient's fields), every
    /// index kept. Borrowed when the table has no personalised URL.
    pub fn for_message(&self, mut fill: impl FnMut(&str) -> String) -> Result<Cow<'_, Self>> {
        if !self.urls.iter().any(|u| is_personalised(u)) {
            return Ok(Cow::Borrowed(self));
        }
        let filled = self.urls.iter().map(|url| -> Arc<str> {
            if is_personalised(url) {
                fill(url).into()
            } else {
                url.clone()
            }
        });
        Ok(Cow::Owned(LinkTable::from_urls(filled)?))
    }

    /// A table from stored URLs, index `i` being `urls[i]` (as the gateway
    /// loads it back). A repeated URL keeps its first index for rewriting.
    pub fn from_urls<I>(urls: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: Into<Arc<str>>,
    {
        let mut table = LinkTable::new();
        for url in urls {
            let url: Arc<str> = url.into();
            let index =
                LinkIndex(u16::try_from(table.urls.len()).map_err(|_| Error::TooManyLinks)?);
            table.index.entry(url.clone()).or_insert(index);
            table.urls.push(url);
        }
        Ok(table)
    }

    /// The index of `url`, adding it at the end if new.
    pub fn intern(&mut self, url: &str) -> Result<LinkIndex> {
        if let Some(&index) = self.index.get(url) {
            return Ok(index);
        }
        let index = LinkIndex(u16::try_from(self.urls.len()).map_err(|_| Error::TooManyLinks)?);
        let url: Arc<str> = Arc::from(url);
        self.index.insert(url.clone(), index);
        self.urls.push(url);
        Ok(index)
    }

    /// The index of `url`, if the table has it.
    pub fn index_of(&self, url: &str) -> Option<LinkIndex> {
        self.index.get(url).copied()
    }

    /// The URL at `link`.
    pub fn get(&self, link: LinkIndex) -> Option<&Arc<str>> {
        self.urls.get(usize::from(link.0))
    }

    /// All URLs in index order: what to store for the campaign.
    pub fn urls(&self) -> &[Arc<str>] {
        &self.urls
    }

    /// Number of URLs.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Whether the table has no URL.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
}

/// A rewritten body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// The body with tracked links.
    pub body: String,
    /// How many links were replaced.
    pub tracked: usize,
    /// Trackable links left as they were because the campaign's table does
    /// not have their URL, in order.
    pub not_in_table: Vec<String>,
}

/// The two header values of RFC 8058 one-click unsubscribe for one message.
/// Both must be covered by the message's DKIM signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListUnsubscribe {
    /// Value of `List-Unsubscribe`: `<BASE/u/TOKEN>`.
    pub list_unsubscribe: String,
    /// Value of `List-Unsubscribe-Post`: always `List-Unsubscribe=One-Click`.
    pub list_unsubscribe_post: &'static str,
}

impl ListUnsubscribe {
    /// `(name, value)` pairs, ready to add to a message.
    pub fn headers(&self) -> [(&'static str, &str); 2] {
        [
            ("List-Unsubscribe", &self.list_unsubscribe),
            ("List-Unsubscribe-Post", self.list_unsubscribe_post),
        ]
    }
}

/// Rewrites bodies for one tracking base URL and keyring.
///
/// # What is tracked
/// - HTML: the `href` of every `<a>` and `<area>` tag whose value (after
///   HTML-unescaping and trimming) starts with `http://` or `https://`, in
///   double, single or no quotes. `mailto:`, `tel:`, relative and fragment links
///   are left alone; so are comments and `<script>`/`<style>` contents.
/// - Text: every `http://` or `https://` URL that starts a word, up to
///   whitespace, `<`, `>`, `"`, a backquote or a non-ASCII character, without
///   trailing punctuation (`.,;:!?'*`, and `)`/`]` left unbalanced).
///
/// # Marking a link untracked
/// - HTML: put the attribute `data-untracked` on the `<a>` (it is kept in the
///   output; browsers ignore it): `<a href="https://x.example/" data-untracked>`.
/// - Text (and anywhere in HTML): write `{{untracked:URL}}`; the marker is
///   removed and the URL is emitted as written. The gateway's template merge
///   must leave this form alone.
///
/// # Link tables
/// The table is per campaign: [`LinkTable::from_template`] collects the tracked
/// URLs of the template once (each distinct URL gets one index, in order of
/// first appearance, HTML before text; URLs with a `{{field}}` after the
/// others). Each personalised body is then rewritten against that table
/// filled for its recipient ([`LinkTable::for_message`]); a link whose URL
/// is not in it (one a field's value cut short, say) stays as it is and is
/// reported in [`Rewritten::not_in_table`].
#[derive(Clone, Debug)]
pub struct Rewriter {
    keys: Arc<Keyring>,
    /// Without trailing slash; checked to need no escaping in HTML or headers.
    base: String,
}

impl Rewriter {
    /// A rewriter whose links point to `base_url` (e.g.
    /// `https://t.example.com` or `https://example.com/track`), which must be
    /// an absolute `http(s)` URL without query, fragment, spaces or characters
    /// that need escaping in HTML.
    pub fn new(keys: Arc<Keyring>, base_url: &str) -> Result<Self> {
        let refuse = |reason| Error::BaseUrl {
            url: base_url.to_string(),
            reason,
        };
        let rest = strip_prefix_ci(base_url, "https://")
            .or_else(|| strip_prefix_ci(base_url, "http://"))
            .ok_or_else(|| refuse("must start with http:// or https://"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(refuse("has no host"));
        }
        if !base_url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'<>&\\`".contains(&b))
        {
            return Err(refuse(
                "contains whitespace, non-ASCII or characters that need escaping",
            ));
        }
        if base_url.contains(['?', '#']) {
            return Err(refuse("must not have a query or fragment"));
        }
        Ok(Rewriter {
            keys,
            base: base_url.trim_end_matches('/').to_string(),
        })
    }

    fn url(&self, route: &str, token: Token) -> String {
        let mut url = String::with_capacity(self.base.len() + route.len() + MAX_TOKEN_LEN);
        url.push_str(&self.base);
        url.push_str(route);
        self.keys.mint_into(token, &mut url);
        url
    }

    /// The tracked URL of link `link` in message `message`.
    pub fn click_url(&self, message: MessageNo, link: LinkIndex) -> String {
        self.url("/c/", Token::Click { message, link })
    }

    /// The open-pixel URL of `message`.
    pub fn open_url(&self, message: MessageNo) -> String {
        self.url("/o/", Token::Open { message })
    }

    /// The unsubscribe URL of `message` (GET shows a confirmation page, POST
    /// unsubscribes at once).
    pub fn unsubscribe_url(&self, message: MessageNo) -> String {
        self.url("/u/", Token::Unsubscribe { message })
    }

    /// `html` with every tracked link of `table` pointing to its click URL
    /// for `message`.
    pub fn rewrite_html(&self, html: &str, table: &LinkTable, message: MessageNo) -> Rewritten {
        self.rewrite(scan_html, html, table, message)
    }

    /// `text` with every tracked link of `table` replaced by its click URL
    /// for `message`.
    pub fn rewrite_text(&self, text: &str, table: &LinkTable, message: MessageNo) -> Rewritten {
        self.rewrite(scan_text, text, table, message)
    }

    /// `body` as `scan` finds its links, each in `table` replaced by its
    /// click URL for `message`.
    fn rewrite(
        &self,
        scan: fn(&str, &mut OnLink<'_>) -> String,
        body: &str,
        table: &LinkTable,
        message: MessageNo,
    ) -> Rewritten {
        let (mut tracked, mut not_in_table) = (0, Vec::new());
        let body = scan(body, &mut |url| match table.index_of(url) {
            Some(link) => {
                tracked += 1;
                Some(self.click_url(message, link))
            }
            None => {
                not_in_table.push(url.to_string());
                None
            }
        });
        Rewritten {
            body,
            tracked,
            not_in_table,
        }
    }

    /// `html` with a 1×1 open pixel for `message` before its last `</body>`,
    /// or at the end if it has none.
    pub fn insert_open_pixel(&self, html: &str, message: MessageNo) -> String {
        let img = format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" \
             style=\"display:block;width:1px;height:1px;border:0\">",
            self.open_url(message)
        );
        let at = rfind_ci(html, "</body").unwrap_or(html.len());
        let mut out = String::with_capacity(html.len() + img.len());
        out.push_str(&html[..at]);
        out.push_str(&img);
        out.push_str(&html[at..]);
        out
    }

    /// The RFC 8058 header values for `message`. RFC 8058 wants the base URL
    /// to be `https`.
    pub fn list_unsubscribe(&self, message: MessageNo) -> ListUnsubscribe {
        ListUnsubscribe {
            list_unsubscribe: format!("<{}>", self.unsubscribe_url(message)),
            list_unsubscribe_post: "List-Unsubscribe=One-Click",
        }
    }
}

/// Called with each trackable URL (decoded); returns its replacement, if any.
type OnLink<'a> = dyn FnMut(&str) -> Option<String> + 'a;

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
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

fn rfind_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    (0..=h.len().checked_sub(n.len())?)
        .rev()
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Whether `url` is a template to fill per message.
pub fn is_personalised(url: &str) -> bool {
    url.contains("{{")
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

fn scan_html(html: &str, on_link: &mut OnLink<'_>) -> String {
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

fn scan_text(text: &str, on_link: &mut OnLink<'_>) -> String {
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

#[cfg(test)]
mod tests;
