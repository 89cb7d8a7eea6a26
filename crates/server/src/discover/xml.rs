//! Reading devices' SOAP answers. Elements are matched by local name, whatever prefix or
//! namespace version a firmware puts on them: cameras disagree, and the names alone are
//! unambiguous in the few answers read here.

use roxmltree::Node;

/// A parsed answer.
pub struct Document<'a>(roxmltree::Document<'a>);

impl std::fmt::Debug for Document<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Document({})", self.0.root_element().tag_name().name())
    }
}

impl<'a> Document<'a> {
    pub fn parse(text: &'a str) -> Result<Self, String> {
        let options = roxmltree::ParsingOptions {
            // Answers carry no DTDs; refusing them keeps entity expansion out.
            allow_dtd: false,
            ..roxmltree::ParsingOptions::default()
        };
        roxmltree::Document::parse_with_options(text, options)
            .map(Document)
            .map_err(|e| format!("not well-formed XML: {e}"))
    }

    pub fn root_element(&self) -> Node<'_, 'a> {
        self.0.root_element()
    }
}

pub fn is(node: &Node<'_, '_>, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local
}

/// The first element named `local` at or below `node`, in document order.
pub fn descendant<'a, 'input>(node: Node<'a, 'input>, local: &str) -> Option<Node<'a, 'input>> {
    node.descendants().find(|n| is(n, local))
}

/// Every element named `local` below `node`.
pub fn descendants<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.descendants().filter(move |n| is(n, local))
}

/// The text of `local` below `node`, trimmed; `None` when absent or empty.
pub fn child_text(node: Node<'_, '_>, local: &str) -> Option<String> {
    descendant(node, local)
        .map(|n| text(n).trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// All the text inside `node`.
pub fn text(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// `%XX` escapes decoded (as scopes carry names with spaces); a malformed escape stays as is.
pub fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_and_entities() {
        assert_eq!(percent_decoded("Front%20Door%zz%2"), "Front Door%zz%2");
        let doc = Document::parse("<a><b>x &amp; y</b></a>").unwrap();
        assert_eq!(
            child_text(doc.root_element(), "b").as_deref(),
            Some("x & y")
        );
        let err = Document::parse("<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>")
            .err()
            .unwrap();
        assert!(err.contains("XML"), "{err}");
    }
}
