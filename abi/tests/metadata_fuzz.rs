//! Property tests of the metadata parser, which reads bytes from any module a page is given:
//! never a panic, every refusal a typed error, and what it accepts means what it says.
//! `npm test` runs a short pass; `npm run fuzz` (HOTSWAP_FUZZ_LONG=1) a long one.

use hotswap_abi::{GuestMetadata, MetadataError};
use proptest::prelude::*;

fn cases(short: u32) -> u32 {
    if std::env::var_os("HOTSWAP_FUZZ_LONG").is_some() {
        short * 100
    } else {
        short
    }
}

/// Lines that look like metadata: known keys (and others) with plausible and hostile values.
fn line() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("abi"),
        Just("name"),
        Just("version"),
        Just("state-schema"),
        Just("migrates-from"),
        Just("migrates-to"),
        Just("other"),
        Just(""),
    ];
    let value = prop_oneof![
        Just("1.0".to_string()),
        Just("2.0.0".to_string()),
        Just("counter".to_string()),
        Just("1,2,3".to_string()),
        Just("4294967296".to_string()),
        Just(",,".to_string()),
        "[ -~]{0,12}",
        "\\PC{0,8}",
    ];
    (key, value, any::<bool>()).prop_map(|(k, v, eq)| if eq { format!("{k}={v}") } else { format!("{k}{v}") })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2_000)))]

    #[test]
    fn arbitrary_bytes_give_metadata_or_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        match GuestMetadata::parse(&bytes) {
            Ok(meta) => prop_assert_eq!(GuestMetadata::parse(meta.encode().as_bytes()), Ok(meta)),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn metadata_like_text_gives_metadata_or_a_typed_error(lines in proptest::collection::vec(line(), 0..10), crlf in any::<bool>()) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        match GuestMetadata::parse(text.as_bytes()) {
            // Whatever was accepted round-trips and names a valid guest.
            Ok(meta) => {
                prop_assert!(!meta.name.is_empty() && meta.name.len() <= hotswap_abi::MAX_NAME_LEN);
                prop_assert_eq!(GuestMetadata::parse(meta.encode().as_bytes()), Ok(meta));
            }
            Err(MetadataError::NotUtf8) => prop_assert!(false, "the text was UTF-8"),
            Err(_) => {}
        }
    }
}
