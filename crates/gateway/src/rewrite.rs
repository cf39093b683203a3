//! Documents served rewritten: the literal replacements an injector declares (`transform`),
//! applied to a body as it streams, chunk by chunk — a 50 MB packument is never held whole. The
//! gateway knows nothing of what it rewrites; the control plane says what to replace with what.
//!
//! Between two chunks the rewriter keeps back the last `longest pattern − 1` bytes: a match that
//! starts in them may end in the next chunk. A match that starts before them is complete in the
//! bytes at hand, so it is found now.

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use injector::Replace;

/// Why a transform cannot be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RewriteError {
    #[error("a replacement with an empty pattern")]
    EmptyPattern,
    #[error("replacement patterns: {0}")]
    Patterns(#[from] aho_corasick::BuildError),
}

/// A streaming find-and-replace over byte chunks.
pub(crate) struct Rewriter {
    patterns: AhoCorasick,
    replacements: Vec<Bytes>,
    /// Bytes kept back between chunks: the longest pattern's length minus one.
    keep: usize,
    pending: BytesMut,
}

impl Rewriter {
    pub(crate) fn new(transform: &[Replace]) -> Result<Self, RewriteError> {
        if transform.iter().any(|replace| replace.from.is_empty()) {
            return Err(RewriteError::EmptyPattern);
        }
        let patterns = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(transform.iter().map(|replace| replace.from.as_bytes()))?;
        let keep = transform.iter().map(|replace| replace.from.len()).max().unwrap_or(1) - 1;
        let replacements =
            transform.iter().map(|replace| Bytes::copy_from_slice(replace.to.as_bytes())).collect();
        Ok(Rewriter { patterns, replacements, keep, pending: BytesMut::new() })
    }

    /// Takes the next chunk; returns what can be sent now.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let settled = self.pending.len().saturating_sub(self.keep);
        self.rewrite_up_to(settled)
    }

    /// The end of the body: everything kept back, rewritten.
    pub(crate) fn finish(&mut self) -> Bytes {
        self.rewrite_up_to(self.pending.len())
    }

    /// Rewrites the pending bytes whose fate is settled: matches starting before `settled`, and
    /// the bytes up to `settled` (or to the end of the last such match).
    fn rewrite_up_to(&mut self, settled: usize) -> Bytes {
        let mut out = BytesMut::with_capacity(settled + 64);
        let mut done = 0;
        for found in self.patterns.find_iter(&self.pending[..]) {
            if found.start() >= settled {
                break;
            }
            out.extend_from_slice(&self.pending[done..found.start()]);
            out.extend_from_slice(&self.replacements[found.pattern().as_usize()]);
            done = found.end();
        }
        let end = settled.max(done);
        out.extend_from_slice(&self.pending[done..end]);
        self.pending.advance(end);
        out.freeze()
    }
}

/// `body` with `transform` applied as it streams. An empty transform passes it through as is.
pub(crate) fn rewritten<S, E>(
    body: S,
    transform: &[Replace],
) -> Result<futures_util::stream::BoxStream<'static, Result<Bytes, E>>, RewriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    if transform.is_empty() {
        return Ok(body.boxed());
    }
    let rewriter = Rewriter::new(transform)?;
    let chunks = futures_util::stream::unfold(
        (Box::pin(body), Some(rewriter)),
        |(mut body, mut rewriter)| async move {
            let active = rewriter.as_mut()?;
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => {
                        let out = active.push(&chunk);
                        if !out.is_empty() {
                            return Some((Ok(out), (body, rewriter)));
                        }
                    }
                    Some(Err(error)) => return Some((Err(error), (body, None))),
                    None => {
                        let out = active.finish();
                        return Some((Ok(out), (body, None)));
                    }
                }
            }
        },
    );
    Ok(chunks.boxed())
}

/// The ETag of an object served through `transform`: the digest alone when nothing is replaced,
/// else the digest and a hash of the replacements (another proxy address is another document).
pub(crate) fn etag(digest: &oci::Digest, transform: &[Replace]) -> String {
    if transform.is_empty() {
        return digest.to_string();
    }
    let mut hasher = oci::Sha256Hasher::new();
    for replace in transform {
        hasher.update(replace.from.as_bytes());
        hasher.update(&[0]);
        hasher.update(replace.to.as_bytes());
        hasher.update(&[0]);
    }
    format!("{digest}+{}", &hasher.finish().hex()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(from: &str, to: &str) -> Replace {
        Replace { from: from.into(), to: to.into() }
    }

    fn rewrite_in_chunks(transform: &[Replace], text: &str, chunk: usize) -> String {
        let mut rewriter = Rewriter::new(transform).unwrap();
        let mut out = Vec::new();
        for part in text.as_bytes().chunks(chunk) {
            out.extend_from_slice(&rewriter.push(part));
        }
        out.extend_from_slice(&rewriter.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn replacements_are_found_whatever_the_chunk_boundaries() {
        let transform = [
            replace("https://npm.example.com/", "http://proxy:5000/npm/js/"),
            replace("https://files.example.com/", "http://proxy:5000/pypi/python/files/"),
        ];
        let text = r#"{"tarball":"https://npm.example.com/a/-/a-1.0.0.tgz","x":"https://files.example.com/p/b.whl#sha256=00","y":"https://npm.example.co"}"#;
        let expected = r#"{"tarball":"http://proxy:5000/npm/js/a/-/a-1.0.0.tgz","x":"http://proxy:5000/pypi/python/files/p/b.whl#sha256=00","y":"https://npm.example.co"}"#;
        for chunk in 1..=text.len() {
            assert_eq!(rewrite_in_chunks(&transform, text, chunk), expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_body_is_never_held_whole() {
        let transform = [replace("https://up.example/", "http://p/")];
        let mut rewriter = Rewriter::new(&transform).unwrap();
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..100 {
            let out = rewriter.push(&chunk);
            assert!(out.len() >= chunk.len() - 18, "all but the kept-back tail goes out at once");
            assert!(rewriter.pending.len() < 19);
        }
        assert_eq!(rewriter.finish().len(), 18);
    }

    #[test]
    fn empty_patterns_are_refused_and_etags_name_the_transform() {
        assert!(matches!(Rewriter::new(&[replace("", "x")]), Err(RewriteError::EmptyPattern)));
        let digest = oci::Digest::of(b"doc");
        assert_eq!(etag(&digest, &[]), digest.to_string());
        let one = etag(&digest, &[replace("a", "b")]);
        let other = etag(&digest, &[replace("a", "c")]);
        assert!(one.starts_with(&digest.to_string()) && one != other);
    }

    #[tokio::test]
    async fn a_stream_is_rewritten_and_its_errors_pass_through() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from_static(b"see https://up.exa")), Ok(Bytes::from_static(b"mple/a and more"))];
        let stream =
            rewritten(futures_util::stream::iter(chunks), &[replace("https://up.example/", "/p/")]).unwrap();
        let out: Vec<Bytes> = stream.map(Result::unwrap).collect().await;
        assert_eq!(out.concat(), b"see /p/a and more");
        let failing: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from_static(b"abc")), Err(std::io::Error::other("cut"))];
        let results: Vec<_> =
            rewritten(futures_util::stream::iter(failing), &[replace("zz", "y")]).unwrap().collect().await;
        assert!(results.last().unwrap().is_err(), "a cut body stays cut: no complete-looking end");
    }
}
