//! A small HTTP client over hyper for driving the API in benchmarks.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

pub struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request; returns the status and the body as JSON (Null if not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(Full::new(body.into()))?;
        let response = self.client.request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// Declares campaign `id`; anything but 200 is an error.
    pub async fn declare(&self, id: &str, decl: &serde_json::Value) -> anyhow::Result<()> {
        let path = format!("/v1/campaigns/{id}");
        let (status, answer) = self
            .call(Method::PUT, &path, "application/json", decl.to_string())
            .await?;
        anyhow::ensure!(status == 200, "declare answered {status}: {answer}");
        Ok(())
    }

    /// Uploads NDJSON participants; an error unless all `n` are accepted.
    pub async fn upload(&self, id: &str, ndjson: String, n: usize) -> anyhow::Result<()> {
        let path = format!("/v1/campaigns/{id}/participants");
        let (status, answer) = self
            .call(Method::POST, &path, "application/x-ndjson", ndjson)
            .await?;
        anyhow::ensure!(
            status == 200 && answer["accepted"] == n,
            "upload answered {status}: {answer}"
        );
        Ok(())
    }

    /// Starts campaign `id`; anything but 200 is an error.
    pub async fn start(&self, id: &str) -> anyhow::Result<()> {
        let path = format!("/v1/campaigns/{id}/start");
        let (status, answer) = self
            .call(Method::POST, &path, "application/json", "")
            .await?;
        anyhow::ensure!(status == 200, "start answered {status}: {answer}");
        Ok(())
    }

    /// GETs `path` and counts the lines of its body as it streams in
    /// (an NDJSON answer of millions of lines is not held whole); an error
    /// unless answered 200 and whole.
    pub async fn count_lines(&self, path: &str) -> anyhow::Result<usize> {
        let request = Request::get(format!("{}{path}", self.base)).body(Full::new(Bytes::new()))?;
        let response = self.client.request(request).await?;
        anyhow::ensure!(
            response.status() == 200,
            "{path} answered {}",
            response.status()
        );
        let mut body = response.into_body();
        let mut lines = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                lines += data.iter().filter(|&&b| b == b'\n').count();
            }
        }
        Ok(lines)
    }

    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        let request = Request::get(format!("{}{path}", self.base)).body(Full::new(Bytes::new()))?;
        let response = self.client.request(request).await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
