//! The gateway's decoding of what the control plane sends: the `Depproxy-Send-Data` value
//! `<kind>:<base64url(JSON)>` and the upload authorize/finalize JSON messages. What decodes
//! encodes back to something that decodes to the same value.
#![no_main]

use injector::{Authorization, AuthorizeRequest, FinalizeRequest, Injector, UploadDecision};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

fn json_round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let again = serde_json::to_vec(&value).unwrap();
        assert_eq!(serde_json::from_slice::<T>(&again).unwrap(), value);
    }
}

fuzz_target!(|data: &[u8]| {
    // The header value as received (any bytes a header may hold).
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        if let Ok(injector) = Injector::from_header_value(&value) {
            assert!(injector.kind() == "send-blob" || injector.kind() == "send-dependency");
            let encoded = injector.encode().unwrap();
            assert!(encoded.starts_with(injector.kind()));
            assert_eq!(Injector::decode(&encoded).unwrap(), injector);
            assert_eq!(Injector::from_header_value(&injector.to_header_value().unwrap()).unwrap(), injector);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Injector::decode(text);
    }
    // The JSON payload itself, without base64: reach serde's decoding of each message directly.
    if let Some(json) = data.strip_prefix(b"send-blob|") {
        json_round_trip::<injector::SendBlob>(json);
    }
    if let Some(json) = data.strip_prefix(b"send-dependency|") {
        json_round_trip::<injector::SendDependency>(json);
    }
    json_round_trip::<AuthorizeRequest>(data);
    json_round_trip::<Authorization>(data);
    json_round_trip::<FinalizeRequest>(data);
    json_round_trip::<UploadDecision>(data);
});
