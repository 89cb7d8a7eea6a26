//! ONVIF's SOAP 1.2 calls: an envelope, WS-Security's UsernameToken with a password digest
//! (ONVIF Core §5.12: what every Profile S device takes; HTTP Digest is answered too, by the
//! HTTP client), and the answer's body or its fault as an error that says which call failed.

use base64::Engine as _;
use sha1::{Digest as _, Sha1};

use super::xml::{self, Document};
use lockstep_rtsp::auth::Credentials;

use crate::camera_http::CameraHttp;

const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// `body` (one operation element with its namespace) in an envelope, signed for `login`.
pub fn envelope(
    body: &str,
    login: Option<&Credentials>,
    nonce: &[u8; 16],
    created: &str,
) -> String {
    let security = login.map_or(String::new(), |login| {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut sha = Sha1::new();
        sha.update(nonce);
        sha.update(created.as_bytes());
        sha.update(login.password.as_bytes());
        format!(
            "<s:Header><wsse:Security s:mustUnderstand=\"1\" xmlns:wsse=\"{WSSE}\" \
             xmlns:wsu=\"{WSU}\"><wsse:UsernameToken><wsse:Username>{}</wsse:Username>\
             <wsse:Password Type=\"{PASSWORD_DIGEST}\">{}</wsse:Password>\
             <wsse:Nonce EncodingType=\"{BASE64_BINARY}\">{}</wsse:Nonce>\
             <wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>\
             </s:Header>",
            escaped(&login.user),
            b64.encode(sha.finalize()),
            b64.encode(nonce)
        )
    });
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">{security}\
         <s:Body>{body}</s:Body></s:Envelope>"
    )
}

/// Text for an XML element or attribute.
pub fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Calls `operation` (for the error) at `path` with `body`; the answer's text when it is not a
/// fault.
pub async fn call(
    http: &mut CameraHttp,
    path: &str,
    operation: &str,
    body: &str,
    login: Option<&Credentials>,
) -> Result<String, String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce: {e}"))?;
    let created = lockstep_record::utc::rfc3339(lockstep_record::utc::now_us());
    let request = envelope(body, login, &nonce, &created);
    let answer = http
        .post(path, "application/soap+xml; charset=utf-8", &request)
        .await
        .map_err(|e| format!("{operation}: {e}"))?;
    if let Some(reason) = fault(&answer.body) {
        return Err(format!(
            "{operation}: the device answered a fault: {reason}"
        ));
    }
    if answer.status != 200 {
        return Err(format!(
            "{operation}: HTTP {} {}",
            answer.status, answer.reason
        ));
    }
    Ok(answer.body)
}

/// A SOAP fault's reason (and subcode, which says `NotAuthorized`), if the answer is one.
pub fn fault(answer: &str) -> Option<String> {
    let doc = Document::parse(answer).ok()?;
    let fault = xml::descendant(doc.root_element(), "Fault")?;
    let reason = xml::child_text(fault, "Text")
        .or_else(|| xml::child_text(fault, "faultstring"))
        .unwrap_or_else(|| "no reason given".to_owned());
    let code = xml::descendants(fault, "Value")
        .last()
        .map(|n| xml::text(n).trim().to_owned())
        .filter(|c| !c.is_empty());
    Some(match code {
        Some(code) => format!("{reason} ({code})"),
        None => reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest of ONVIF's Application Programmer's Guide example: nonce
    /// `LKqI6G/AikKCQrN0zqZFlg==`, created `2010-09-16T07:50:45Z`, password `userpassword`.
    #[test]
    fn the_password_digest_matches_the_programmers_guide() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce: [u8; 16] = b64
            .decode("LKqI6G/AikKCQrN0zqZFlg==")
            .unwrap()
            .try_into()
            .unwrap();
        let login = Credentials {
            user: "user".into(),
            password: "userpassword".into(),
        };
        let text = envelope("<x/>", Some(&login), &nonce, "2010-09-16T07:50:45Z");
        assert!(text.contains(">tuOSpGlFlIXsozq4HFNeeGeFLEI=<"), "{text}");
        assert!(!text.contains("userpassword"));
    }

    #[test]
    fn faults_say_their_reason_and_subcode() {
        let answer = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
             xmlns:ter=\"http://www.onvif.org/ver10/error\"><s:Body><s:Fault><s:Code>\
             <s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value>\
             </s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"en\">Sender not Authorized\
             </s:Text></s:Reason></s:Fault></s:Body></s:Envelope>";
        assert_eq!(
            fault(answer).as_deref(),
            Some("Sender not Authorized (ter:NotAuthorized)")
        );
        assert_eq!(fault("<a/>"), None);
    }
}
