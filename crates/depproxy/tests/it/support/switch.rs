//! A TCP forwarder in front of an upstream that can be switched off (connections refused, open
//! ones cut) and on again, to test outages at the network level.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::task::{JoinHandle, JoinSet};

pub struct TcpSwitch {
    address: SocketAddr,
    target: SocketAddr,
    accept: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl TcpSwitch {
    pub async fn start(target: SocketAddr) -> TcpSwitch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let switch = TcpSwitch { address, target, accept: Arc::new(Mutex::new(None)) };
        *switch.accept.lock().unwrap() = Some(tokio::spawn(forward(listener, target)));
        switch
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Refuses new connections and cuts open ones.
    pub fn down(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
    }

    pub async fn up(&self) {
        self.down();
        let listener = tokio::net::TcpListener::bind(self.address).await.unwrap();
        *self.accept.lock().unwrap() = Some(tokio::spawn(forward(listener, self.target)));
    }
}

impl Drop for TcpSwitch {
    fn drop(&mut self) {
        self.down();
    }
}

/// Dropping this task (abort) drops the listener and, with the join set, every connection.
async fn forward(listener: tokio::net::TcpListener, target: SocketAddr) {
    let mut connections = JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        connections.spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
