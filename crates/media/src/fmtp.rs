//! SDP `a=fmtp` parameter lists (`key=value;key=value`), as cameras write them: spaces around
//! keys and values, a trailing `;`, keys in any case.

use base64::Engine as _;

/// The parameters as (key, value) pairs, in order.
pub fn params(fmtp: &str) -> Vec<(String, String)> {
    fmtp.split(';')
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// The value of `key` (case-insensitive), if given.
pub fn value<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// The NAL units of a comma-separated base64 list (`sprop-parameter-sets`, `sprop-sps`…);
/// `Err` names the key whose value is not base64.
pub fn base64_nal_units(fmtp: &str, key: &str) -> Result<Vec<Vec<u8>>, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(list) = value(fmtp, key) else {
        return Ok(Vec::new());
    };
    let mut nals = Vec::new();
    for item in list.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let nal = b64
            .decode(item)
            .map_err(|e| format!("{key} is not base64 ({e})"))?;
        if !nal.is_empty() {
            nals.push(nal);
        }
    }
    Ok(nals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_lists_as_cameras_write_them() {
        let fmtp = " packetization-mode=1; Sprop-Parameter-Sets=Z0LAHqs=,aM4=;";
        assert_eq!(value(fmtp, "packetization-mode"), Some("1"));
        assert_eq!(
            base64_nal_units(fmtp, "sprop-parameter-sets").unwrap(),
            vec![vec![0x67, 0x42, 0xc0, 0x1e, 0xab], vec![0x68, 0xce]]
        );
        assert!(base64_nal_units(fmtp, "sprop-vps").unwrap().is_empty());
        assert!(base64_nal_units("sprop-sps=!!", "sprop-sps")
            .unwrap_err()
            .contains("sprop-sps"));
        assert_eq!(params("a=1;b = 2;junk").len(), 2);
    }
}
