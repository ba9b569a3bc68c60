//! Link tables and the rewriting of bodies and headers at send time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use self::scan::{OnLink, rfind_ci, scan_html, scan_text, strip_prefix_ci};
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

/// Whether `url` is a template to fill per message.
pub fn is_personalised(url: &str) -> bool {
    url.contains("{{")
}

mod scan;
#[cfg(test)]
mod tests;
