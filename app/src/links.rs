//! Links between the app's pages that carry values in the URL fragment
//! (`#/verify?image=…&mrenclave=…&mrsigner=…`): the result of a conversion links to
//! verifying that image, pre-filled. Pure; only public values (image names, hex
//! measurements) ever go into a link, never credentials.

/// The page part of a fragment: `#/verify?image=x` → `verify`.
pub fn hash_page(hash: &str) -> &str {
    let h = hash.trim_start_matches('#').trim_start_matches('/');
    h.split('?').next().unwrap_or_default()
}

/// The query of a fragment as (name, value) pairs, percent-decoded.
pub fn hash_query(hash: &str) -> Vec<(String, String)> {
    match hash.split_once('?') {
        Some((_, q)) => url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        None => Vec::new(),
    }
}

/// One value of a fragment's query.
pub fn hash_param(hash: &str, name: &str) -> Option<String> {
    hash_query(hash)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The Verify page pre-filled with an image and the measurements to expect.
pub fn verify_href(image: &str, mrenclave: &str, mrsigner: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("image", image)
        .append_pair("mrenclave", mrenclave)
        .append_pair("mrsigner", mrsigner)
        .finish();
    format!("#/verify?{q}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_link_round_trips() {
        let h = verify_href(
            "127.0.0.1:5000/out/app:1",
            &"ab".repeat(32),
            &"cd".repeat(32),
        );
        assert!(
            h.starts_with("#/verify?image=127.0.0.1%3A5000%2Fout%2Fapp%3A1&"),
            "{h}"
        );
        assert_eq!(hash_page(&h), "verify");
        assert_eq!(
            hash_param(&h, "image").as_deref(),
            Some("127.0.0.1:5000/out/app:1")
        );
        assert_eq!(hash_param(&h, "mrsigner"), Some("cd".repeat(32)));
        assert_eq!(hash_param(&h, "nothing"), None);
        assert_eq!(hash_page("#/keys"), "keys");
        assert_eq!(hash_page(""), "");
        assert!(hash_query("#/keys").is_empty());
    }
}
