//! Header lists as the contract carries them (ordered name/value pairs, so repeated headers
//! survive) and their conversion to and from `http::HeaderMap`.

use http::HeaderMap;

/// A header name and value, kept as an ordered list so repeated headers survive.
pub type HeaderList = Vec<(String, String)>;

/// The list as a `HeaderMap`. Pairs that are not valid header names or values are left out: the
/// list came from our own control plane, which only puts valid ones in.
pub fn header_map(list: &[(String, String)]) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(list.len());
    append_headers(&mut headers, list);
    headers
}

/// Appends the list's headers to `headers` (by the same rule as [`header_map`]).
pub fn append_headers(headers: &mut HeaderMap, list: &[(String, String)]) {
    oci::response::append_header_pairs(headers, list);
}

/// The map as a list; values that are not visible ASCII are left out (they cannot be carried as text).
pub fn header_list(headers: &HeaderMap) -> HeaderList {
    headers
        .iter()
        .filter_map(|(name, value)| {
            value.to_str().ok().map(|value| (name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn lists_and_maps_round_trip_with_repeats() {
        let list: HeaderList = vec![
            ("accept".into(), "a".into()),
            ("accept".into(), "b".into()),
            ("authorization".into(), "Bearer t".into()),
        ];
        let map = header_map(&list);
        assert_eq!(map.get_all("accept").iter().count(), 2);
        assert_eq!(header_list(&map), list);
        let invalid: HeaderList = vec![("bad name".into(), "x".into()), ("ok".into(), "line\nbreak".into())];
        assert!(header_map(&invalid).is_empty());
        let mut existing = HeaderMap::new();
        existing.insert("accept", HeaderValue::from_static("z"));
        append_headers(&mut existing, &list);
        assert_eq!(existing.get_all("accept").iter().count(), 3);
    }
}
