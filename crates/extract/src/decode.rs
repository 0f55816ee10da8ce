//! Bytes → text: the encoding sniffing a browser does, reduced to what a crawler sees
//! (BOM, HTTP charset, `<meta>` prescan, UTF-8 validity, windows-1252).

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252, X_USER_DEFINED};

/// How far into the body the `<meta>` prescan looks; the HTML standard allows 1024 bytes,
/// browsers look further, and real pages put a long `<head>` before the charset.
const PRESCAN_LIMIT: usize = 4096;

/// Decode bytes to text: BOM, then the Content-Type charset, then `<meta charset>` /
/// `<meta http-equiv content-type>` prescan of the first 4 KiB, else UTF-8 if valid, else
/// windows-1252. Invalid sequences become U+FFFD; this never fails.
pub fn decode_html<'a>(
    body: &'a [u8],
    content_type: Option<&str>,
) -> (Cow<'a, str>, &'static Encoding) {
    if let Some((encoding, bom_length)) = Encoding::for_bom(body) {
        let (text, _) = encoding.decode_without_bom_handling(&body[bom_length..]);
        return (text, encoding);
    }
    let declared = content_type
        .and_then(charset_from_content_type)
        .or_else(|| prescan_meta_charset(&body[..body.len().min(PRESCAN_LIMIT)]));
    let encoding = match declared {
        Some(encoding) => encoding,
        None if std::str::from_utf8(body).is_ok() => UTF_8,
        None => WINDOWS_1252,
    };
    let (text, _) = encoding.decode_without_bom_handling(body);
    (text, encoding)
}

/// The `charset` parameter of a `Content-Type` header value, if it names a known encoding.
fn charset_from_content_type(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        let label = value.trim().trim_matches(|c| c == '"' || c == '\'');
        Encoding::for_label(label.as_bytes())
    })
}

/// The WHATWG "prescan a byte stream to determine its encoding" algorithm: walks tags and
/// comments so that a `<meta>` inside a comment or an attribute value is not mistaken for
/// a declaration.
fn prescan_meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let mut position = 0;
    while position < bytes.len() {
        let rest = &bytes[position..];
        if rest.starts_with(b"<!--") {
            // "-->" may overlap the opening: "<!-->" is a complete comment.
            position += 2 + find(&rest[2..], b"-->")? + 3;
        } else if starts_with_ignore_case(rest, b"<meta")
            && rest.get(5).is_some_and(|&b| is_space(b) || b == b'/')
        {
            position += 6;
            if let Some(encoding) = meta_declaration(bytes, &mut position)? {
                return Some(encoding);
            }
        } else if rest.len() > 2
            && rest[0] == b'<'
            && (rest[1].is_ascii_alphabetic() || (rest[1] == b'/' && rest[2].is_ascii_alphabetic()))
        {
            position += 2;
            while position < bytes.len() && !is_space(bytes[position]) && bytes[position] != b'>' {
                position += 1;
            }
            while next_attribute(bytes, &mut position)?.is_some() {}
        } else if rest.starts_with(b"<!") || rest.starts_with(b"</") || rest.starts_with(b"<?") {
            position += find(rest, b">")? + 1;
        } else {
            position += 1;
        }
    }
    None
}

/// Reads the attributes of one `<meta>` tag. `None` means the input ended mid-tag (stop
/// the prescan); `Some(None)` means this tag declares nothing usable.
fn meta_declaration(bytes: &[u8], position: &mut usize) -> Option<Option<&'static Encoding>> {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut got_pragma = false;
    let mut need_pragma: Option<bool> = None;
    let mut charset: Option<&'static Encoding> = None;
    while let Some((name, value)) = next_attribute(bytes, position)? {
        if seen.contains(&name) {
            continue;
        }
        match name.as_slice() {
            b"http-equiv" => got_pragma |= value == b"content-type",
            b"content" if charset.is_none() => {
                if let Some(found) = charset_from_meta_content(&value) {
                    charset = Some(found);
                    need_pragma = Some(true);
                }
            }
            b"charset" if charset.is_none() => {
                charset = Encoding::for_label(&value);
                need_pragma = Some(false);
            }
            _ => {}
        }
        seen.push(name);
    }
    let usable = match need_pragma {
        None => false,
        Some(true) => got_pragma,
        Some(false) => true,
    };
    Some(charset.filter(|_| usable).map(|encoding| {
        // A page that is being read as ASCII cannot really be UTF-16, and x-user-defined
        // in a meta tag means windows-1252 (HTML standard).
        if encoding == UTF_16BE || encoding == UTF_16LE {
            UTF_8
        } else if encoding == X_USER_DEFINED {
            WINDOWS_1252
        } else {
            encoding
        }
    }))
}

/// The WHATWG "get an attribute" step. `None`: input ended; `Some(None)`: the tag ended.
/// Names and values are ASCII-lowercased, as the algorithm prescribes.
#[allow(clippy::type_complexity)]
fn next_attribute(bytes: &[u8], position: &mut usize) -> Option<Option<(Vec<u8>, Vec<u8>)>> {
    while is_space(*bytes.get(*position)?) || bytes[*position] == b'/' {
        *position += 1;
    }
    if bytes[*position] == b'>' {
        *position += 1;
        return Some(None);
    }
    let mut name = Vec::new();
    let mut value = Vec::new();
    loop {
        let byte = *bytes.get(*position)?;
        if byte == b'=' && !name.is_empty() {
            *position += 1;
            break;
        }
        if is_space(byte) {
            while is_space(*bytes.get(*position)?) {
                *position += 1;
            }
            if bytes[*position] != b'=' {
                return Some(Some((name, value)));
            }
            *position += 1;
            break;
        }
        if byte == b'/' || byte == b'>' {
            return Some(Some((name, value)));
        }
        name.push(byte.to_ascii_lowercase());
        *position += 1;
    }
    while is_space(*bytes.get(*position)?) {
        *position += 1;
    }
    let first = bytes[*position];
    if first == b'"' || first == b'\'' {
        *position += 1;
        loop {
            let byte = *bytes.get(*position)?;
            *position += 1;
            if byte == first {
                return Some(Some((name, value)));
            }
            value.push(byte.to_ascii_lowercase());
        }
    }
    if first == b'>' {
        return Some(Some((name, value)));
    }
    loop {
        let byte = *bytes.get(*position)?;
        if is_space(byte) || byte == b'>' {
            return Some(Some((name, value)));
        }
        value.push(byte.to_ascii_lowercase());
        *position += 1;
    }
}

/// "Extract a character encoding from a meta element" (`content="text/html; charset=…"`).
fn charset_from_meta_content(content: &[u8]) -> Option<&'static Encoding> {
    let mut position = 0;
    loop {
        position += find(&content[position..], b"charset")? + 7;
        while content.get(position).is_some_and(|&b| is_space(b)) {
            position += 1;
        }
        if content.get(position) == Some(&b'=') {
            position += 1;
            break;
        }
    }
    while content.get(position).is_some_and(|&b| is_space(b)) {
        position += 1;
    }
    let rest = &content[position..];
    let label = match rest.first()? {
        &quote @ (b'"' | b'\'') => {
            let end = rest[1..].iter().position(|&b| b == quote)?;
            &rest[1..1 + end]
        }
        _ => {
            let end = rest
                .iter()
                .position(|&b| is_space(b) || b == b';')
                .unwrap_or(rest.len());
            &rest[..end]
        }
    };
    Encoding::for_label(label)
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | b'\x0C' | b'\r' | b' ')
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}
