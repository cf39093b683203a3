//! A raw HTTP/1.1 answer whose `Content-Length` lies: hyper will not send one, so this serves it
//! from a one-shot TCP listener the registry redirects to.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use oci::Digest;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::gate::Gate;

/// Starts a one-shot listener that answers any request with `bytes` under a false
/// `Content-Length`, and redirects the caller there. With a gate, it sends `gate.before` bytes,
/// then waits for the gate to open before sending the rest.
pub(crate) async fn lying_response(
    bytes: Bytes,
    claimed: u64,
    media_type: &str,
    digest: &Digest,
    gate: Option<Gate>,
) -> Response {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {media_type}\r\nDocker-Content-Digest: {digest}\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n"
    );
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 8192];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(head.as_bytes()).await;
            let mut rest = bytes;
            if let Some(gate) = gate {
                let first = rest.split_to(gate.before.min(rest.len()));
                let _ = socket.write_all(&first).await;
                let _ = socket.flush().await;
                gate.wait().await;
            }
            let _ = socket.write_all(&rest).await;
            let _ = socket.shutdown().await;
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&format!("http://{address}/lying")).unwrap());
    response
}
