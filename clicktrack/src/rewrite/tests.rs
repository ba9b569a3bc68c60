use super::*;
use crate::Token;

fn rewriter() -> (Arc<Keyring>, Rewriter) {
    let keys = Arc::new(Keyring::from_secret(3, b"a test secret of 32 bytes.......").unwrap());
    let rw = Rewriter::new(keys.clone(), "https://t.example.com/").unwrap();
    (keys, rw)
}

/// The token of every click URL in `body`, verified, in order.
fn clicks(keys: &Keyring, body: &str) -> Vec<Token> {
    body.match_indices("https://t.example.com/c/")
        .map(|(at, prefix)| {
            let rest = &body[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(rest.len());
            keys.verify(&rest[..end]).unwrap()
        })
        .collect()
}

fn click(message: u64, link: u16) -> Token {
    Token::Click {
        message: MessageNo(message),
        link: LinkIndex(link),
    }
}

const HTML: &str = r##"<html><body>
<p>Hello {{name}}, <a href="https://shop.example/offer?id=1&amp;src=mail">see the offer</a>
or <A HREF='http://shop.example/faq'>the FAQ</A>.</p>
<a class="btn" href = "https://shop.example/offer?id=1&amp;src=mail">again</a>
<a href=https://shop.example/bare>bare</a>
<a href="mailto:help@shop.example">mail us</a> <a href="tel:+15550100">call</a>
<a href="/relative">rel</a> <a href="#top">top</a>
<a href="https://shop.example/legal" data-untracked>legal</a>
<a href="{{untracked:https://shop.example/privacy}}">privacy</a>
<link rel="stylesheet" href="https://cdn.example/style.css">
<!-- <a href="https://shop.example/commented">x</a> -->
<a title="a > b" href="https://shop.example/gt">gt</a>
<a href="https://shop.example/{{customer}}/profile">profile</a>
</body></html>"##;

const TEXT: &str = "Hello {{name}},\n\
see the offer: https://shop.example/offer?id=1&src=mail.\n\
FAQ (http://shop.example/faq), new: https://shop.example/new!\n\
Wiki: https://en.example.org/wiki/Foo_(bar) and <https://shop.example/angle>\n\
Legal: {{untracked:https://shop.example/legal}}\n\
Not links: xhttps://nope.example mailto:a@b.example ftp://files.example\n";

#[test]
fn link_table_is_built_once_from_the_template_in_order() {
    let table = LinkTable::from_template(Some(TEXT), Some(HTML)).unwrap();
    let urls: Vec<&str> = table.urls().iter().map(|u| &**u).collect();
    assert_eq!(
        urls,
        [
            "https://shop.example/offer?id=1&src=mail",
            "http://shop.example/faq",
            "https://shop.example/bare",
            "https://shop.example/gt",
            "https://shop.example/new",
            "https://en.example.org/wiki/Foo_(bar)",
            "https://shop.example/angle",
            "https://shop.example/{{customer}}/profile",
        ]
    );
    assert_eq!(
        table.index_of("http://shop.example/faq"),
        Some(LinkIndex(1))
    );
    assert_eq!(
        &**table.get(LinkIndex(6)).unwrap(),
        "https://shop.example/angle"
    );
    assert!(table.get(LinkIndex(8)).is_none());
    let reloaded = LinkTable::from_urls(table.urls().to_vec()).unwrap();
    assert_eq!(reloaded.urls(), table.urls());
    assert_eq!(
        reloaded.index_of("https://shop.example/gt"),
        Some(LinkIndex(3))
    );
}

#[test]
fn html_links_are_rewritten_and_the_rest_left_byte_for_byte() {
    let (keys, rw) = rewriter();
    let table = LinkTable::from_template(None, Some(HTML)).unwrap();
    let personal = HTML
        .replace("{{name}}", "Ann")
        .replace("{{customer}}", "c42");
    let out = rw.rewrite_html(&personal, &table, MessageNo(77));
    assert_eq!(out.tracked, 5);
    assert_eq!(out.not_in_table, ["https://shop.example/c42/profile"]);
    assert_eq!(
        clicks(&keys, &out.body),
        [
            click(77, 0),
            click(77, 1),
            click(77, 0),
            click(77, 2),
            click(77, 3)
        ]
    );
    for kept in [
        r#"<a href="mailto:help@shop.example">"#,
        r#"<a href="tel:+15550100">"#,
        r#"<a href="/relative">"#,
        r##"<a href="#top">"##,
        r#"<a href="https://shop.example/legal" data-untracked>"#,
        r#"<a href="https://shop.example/privacy">privacy</a>"#,
        r#"<link rel="stylesheet" href="https://cdn.example/style.css">"#,
        r#"<!-- <a href="https://shop.example/commented">x</a> -->"#,
        r#"<a href="https://shop.example/c42/profile">"#,
        "<p>Hello Ann, <a href=\"https://t.example.com/c/",
        "\">see the offer</a>\nor <A HREF='https://t.example.com/c/",
        "'>the FAQ</A>.</p>\n<a class=\"btn\" href = \"https://t.example.com/c/",
        "<a href=\"https://t.example.com/c/",
        "<a title=\"a > b\" href=\"https://t.example.com/c/",
    ] {
        assert!(out.body.contains(kept), "missing {kept:?} in\n{}", out.body);
    }
    assert!(!out.body.contains("shop.example/offer"));
    assert!(!out.body.contains("shop.example/bare"));
    assert!(!out.body.contains("{{untracked"));
}

#[test]
fn personalised_links_are_tracked_with_the_table_filled_for_the_message() {
    let (keys, rw) = rewriter();
    let table = LinkTable::from_template(None, Some(HTML)).unwrap();
    let personal = HTML
        .replace("{{name}}", "Ann")
        .replace("{{customer}}", "c42");
    let filled = table
        .for_message(|url| url.replace("{{customer}}", "c42"))
        .unwrap();
    // After the four fixed links of the HTML.
    assert_eq!(
        &**filled.get(LinkIndex(4)).unwrap(),
        "https://shop.example/c42/profile"
    );
    let out = rw.rewrite_html(&personal, &filled, MessageNo(77));
    assert_eq!(out.tracked, 6);
    assert!(out.not_in_table.is_empty(), "{:?}", out.not_in_table);
    assert_eq!(clicks(&keys, &out.body)[5], click(77, 4));
    assert!(!out.body.contains("c42/profile"));
    // Fixed links keep their indices; a table without personalised links
    // is used as it is.
    assert_eq!(
        filled.index_of("http://shop.example/faq"),
        Some(LinkIndex(1))
    );
    let fixed = LinkTable::from_template(Some("see https://a.example/"), None).unwrap();
    assert!(matches!(
        fixed.for_message(|_| unreachable!()).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn text_links_are_rewritten_without_their_punctuation() {
    let (keys, rw) = rewriter();
    let table = LinkTable::from_template(Some(TEXT), Some(HTML)).unwrap();
    let out = rw.rewrite_text(&TEXT.replace("{{name}}", "Ann"), &table, MessageNo(5));
    assert_eq!(out.tracked, 5);
    assert!(out.not_in_table.is_empty());
    assert_eq!(
        clicks(&keys, &out.body),
        [
            click(5, 0),
            click(5, 1),
            click(5, 4),
            click(5, 5),
            click(5, 6)
        ]
    );
    let lines: Vec<&str> = out.body.lines().collect();
    assert!(
        lines[1].starts_with("see the offer: https://t.example.com/c/") && lines[1].ends_with('.')
    );
    assert!(lines[2].starts_with("FAQ (https://t.example.com/c/") && lines[2].ends_with('!'));
    assert!(lines[2].contains("), new: https://t.example.com/c/"));
    assert!(lines[3].ends_with('>') && lines[3].contains(" and <https://t.example.com/c/"));
    assert_eq!(lines[4], "Legal: https://shop.example/legal");
    assert_eq!(
        lines[5],
        "Not links: xhttps://nope.example mailto:a@b.example ftp://files.example"
    );
}

#[test]
fn same_url_gets_the_same_index_across_bodies_and_messages() {
    let (keys, rw) = rewriter();
    let html = r#"<a href="https://a.example/x?p=1&amp;q=2">a</a>"#;
    let text = "go https://a.example/x?p=1&q=2 now";
    let table = LinkTable::from_template(Some(text), Some(html)).unwrap();
    assert_eq!(table.len(), 1);
    for message in [1, 2, u64::MAX] {
        let h = rw.rewrite_html(html, &table, MessageNo(message));
        let t = rw.rewrite_text(text, &table, MessageNo(message));
        assert_eq!(clicks(&keys, &h.body), [click(message, 0)]);
        assert_eq!(clicks(&keys, &t.body), [click(message, 0)]);
    }
}

#[test]
fn entities_in_href_are_decoded_before_storing() {
    let html = concat!(
        r#"<a href="https://a.example/?a=1&amp;b=2&#38;c=3&#x26;d=&quot;4&quot;">x</a>"#,
        r#"<a href="https://a.example/?copy=1&copy;&unknown;">y</a>"#,
        r#"<a href="  https://a.example/trim  ">z</a>"#,
        r#"<a href="https://a.example/é&amp;ü">u</a>"#,
    );
    let table = LinkTable::from_template(None, Some(html)).unwrap();
    let urls: Vec<&str> = table.urls().iter().map(|u| &**u).collect();
    assert_eq!(
        urls,
        [
            r#"https://a.example/?a=1&b=2&c=3&d="4""#,
            "https://a.example/?copy=1&copy;&unknown;",
            "https://a.example/trim",
            "https://a.example/é&ü",
        ]
    );
}

#[test]
fn malformed_html_is_left_alone() {
    let (_, rw) = rewriter();
    let table = LinkTable::from_urls(["https://a.example/"]).unwrap();
    for html in [
        "<a href=\"https://a.example/",
        "<a href='https://a.example/\"",
        "<a href",
        "<a",
        "<",
        "<<<>>>",
        "{{untracked:",
        "{{untracked:https://a.example/",
        "<a =x href=y>",
        "<!-- unterminated <a href=\"https://a.example/\">",
        "<script>var s = '<a href=\"https://a.example/\">';</script>",
        "<style>a[href=\"https://a.example/\"]{}</style>",
    ] {
        let out = rw.rewrite_html(html, &table, MessageNo(1));
        assert_eq!(out.body, html);
        assert_eq!(out.tracked, 0);
    }
}

#[test]
fn open_pixel_goes_before_the_last_body_close_or_at_the_end() {
    let (keys, rw) = rewriter();
    let out = rw.insert_open_pixel("<html><BODY>hi</Body></html>", MessageNo(9));
    let at = out.find("<img src=\"https://t.example.com/o/").unwrap();
    assert!(out[..at].ends_with("<html><BODY>hi"));
    assert!(out.ends_with("\"></Body></html>"));
    let token = &out[at + 34..out[at + 34..].find('"').unwrap() + at + 34];
    assert_eq!(
        keys.verify(token).unwrap(),
        Token::Open {
            message: MessageNo(9)
        }
    );
    let bare = rw.insert_open_pixel("<p>no body</p>", MessageNo(9));
    assert!(bare.starts_with("<p>no body</p><img src=\"https://t.example.com/o/"));
}

#[test]
fn list_unsubscribe_headers_follow_rfc_8058() {
    let (keys, rw) = rewriter();
    let lu = rw.list_unsubscribe(MessageNo(12));
    let [(n1, v1), (n2, v2)] = lu.headers();
    assert_eq!((n1, n2), ("List-Unsubscribe", "List-Unsubscribe-Post"));
    assert_eq!(v2, "List-Unsubscribe=One-Click");
    let token = v1
        .strip_prefix("<https://t.example.com/u/")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap();
    assert_eq!(
        keys.verify(token).unwrap(),
        Token::Unsubscribe {
            message: MessageNo(12)
        }
    );
    assert_eq!(rw.unsubscribe_url(MessageNo(12)), v1[1..v1.len() - 1]);
}

#[test]
fn base_url_is_checked() {
    let keys = Arc::new(Keyring::from_secret(0, &[7; 32]).unwrap());
    for ok in [
        "http://127.0.0.1:7801",
        "https://t.example.com/track/",
        "HTTPS://T.EXAMPLE",
    ] {
        assert!(Rewriter::new(keys.clone(), ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "t.example.com",
        "ftp://t.example.com",
        "https://",
        "https:///path",
        "https://t.example.com/?q=1",
        "https://t.example.com/#f",
        "https://t.example.com/a b",
        "https://t.example.com/\"",
        "https://t.example.com/é",
    ] {
        assert!(
            matches!(Rewriter::new(keys.clone(), bad), Err(Error::BaseUrl { .. })),
            "{bad}"
        );
    }
    let rw = Rewriter::new(keys, "http://127.0.0.1:7801/").unwrap();
    assert!(
        rw.click_url(MessageNo(1), LinkIndex(0))
            .starts_with("http://127.0.0.1:7801/c/")
    );
}

#[test]
fn link_table_caps_at_u16() {
    let mut table = LinkTable::new();
    for i in 0..=u16::MAX {
        assert_eq!(
            table.intern(&format!("https://a.example/{i}")).unwrap(),
            LinkIndex(i)
        );
    }
    assert!(matches!(
        table.intern("https://a.example/one-more"),
        Err(Error::TooManyLinks)
    ));
    assert_eq!(table.intern("https://a.example/5").unwrap(), LinkIndex(5));
}

proptest::proptest! {
    #[test]
    fn rewriting_arbitrary_input_never_panics(s in "\\PC{0,200}") {
        let (_, rw) = rewriter();
        let table = LinkTable::from_template(Some(&s), Some(&s)).unwrap();
        let _ = rw.rewrite_html(&s, &table, MessageNo(1));
        let _ = rw.rewrite_text(&s, &table, MessageNo(1));
        let _ = rw.insert_open_pixel(&s, MessageNo(1));
    }

    #[test]
    fn html_without_tracked_links_is_unchanged(s in "[^<{]{0,100}") {
        let (_, rw) = rewriter();
        let table = LinkTable::from_urls(["https://a.example/"]).unwrap();
        proptest::prop_assert_eq!(rw.rewrite_html(&s, &table, MessageNo(1)).body, s);
    }
}
