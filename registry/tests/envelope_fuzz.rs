//! Property tests of the manifest envelope and payload parser, which reads whatever a
//! registry (or anyone between it and the page) serves: never a panic, every refusal a typed
//! `RegistryError`. `npm test` runs a short pass; `npm run fuzz` (HOTSWAP_FUZZ_LONG=1) a long one.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hotswap_registry::{Envelope, PinnedKey, RegistryError};
use proptest::prelude::*;

fn cases(short: u32) -> u32 {
    if std::env::var_os("HOTSWAP_FUZZ_LONG").is_some() {
        short * 100
    } else {
        short
    }
}

/// JSON values with the manifest's field names in them, nested, of every type.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("1.0.0")),
        Just(serde_json::Value::from("ab".repeat(32))),
    ];
    let key = prop_oneof![
        Just("version"),
        Just("expires"),
        Just("guests"),
        Just("current"),
        Just("versions"),
        Just("sha256"),
        Just("size"),
        Just("abi"),
        Just("stateSchema"),
        Just("migratesFrom"),
        Just("url"),
        Just("editor"),
        Just("1.0.0"),
        Just("x"),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(key.clone().prop_map(str::to_string), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn typed(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Malformed { .. } | RegistryError::Signatures { .. })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1_000)))]

    #[test]
    fn arbitrary_bytes_are_an_envelope_or_malformed(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = Envelope::parse(&bytes) {
            prop_assert!(matches!(e, RegistryError::Malformed { .. }), "{e:?}");
        }
    }

    #[test]
    fn arbitrary_envelopes_never_panic_and_refuse_with_a_type(
        payload in prop_oneof!["\\PC{0,40}", proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| B64.encode(b))],
        signatures in proptest::collection::vec(("\\PC{0,20}", "\\PC{0,90}"), 0..4),
        threshold in 0usize..3,
    ) {
        let json = serde_json::json!({
            "payload": payload,
            "signatures": signatures.iter().map(|(k, s)| serde_json::json!({ "keyid": k, "sig": s })).collect::<Vec<_>>(),
        });
        let envelope = Envelope::parse(json.to_string().as_bytes()).unwrap();
        let _ = envelope.payload_bytes();
        prop_assert!(envelope.candidates(&[PinnedKey { public: [7; 32] }]).is_empty(), "no signature is by that key");
        if let Err(e) = envelope.accept(1, threshold) {
            prop_assert!(typed(&e), "{e:?}");
        }
    }

    #[test]
    fn manifest_shaped_payloads_are_a_manifest_or_malformed(value in json(), now in any::<u64>(), seen in any::<Option<u64>>()) {
        let envelope = Envelope { payload: B64.encode(value.to_string()), signatures: vec![] };
        match envelope.accept(1, 1) {
            Ok(manifest) => {
                // Whatever parses can be checked and looked into without a panic.
                let _ = manifest.check_fresh(now, seen);
                for guest in manifest.guests.keys() {
                    let _ = manifest.release(guest, None);
                }
            }
            Err(e) => prop_assert!(matches!(e, RegistryError::Malformed { .. }), "{e:?}"),
        }
    }
}
