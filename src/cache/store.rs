//! Shared result store: an S3 bucket/prefix that several replicas read after their disk tier and write
//! after a transform, so a variant made by one replica is a `HIT-STORE` on every other. Entries use the
//! disk tier's format (header + BLAKE3-checked body); a damaged or foreign object is a miss.

use super::disk::{decode_entry, encode_entry};
use super::key::{CacheKey, ObjectId};
use super::Variant;
use crate::origin::s3::{map_sdk, S3Origin};
use crate::origin::{s3_settings, FetchConfig, OriginOptions};
use aws_sdk_s3::error::SdkError;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Config section `[cache.store]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `s3://bucket/prefix[?options]`; empty: no shared store.
    pub spec: String,
    #[serde(flatten)]
    pub options: OriginOptions,
}

pub struct Store {
    s3: S3Origin,
}

impl Store {
    pub async fn new(cfg: &StoreConfig, fetch: &FetchConfig) -> Result<Option<Arc<Self>>, String> {
        if cfg.spec.is_empty() {
            return Ok(None);
        }
        let settings = s3_settings(&cfg.spec, &cfg.options).map_err(|e| format!("cache.store.spec: {e}"))?;
        Ok(Some(Arc::new(Store { s3: S3Origin::new(settings, fetch).await? })))
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Variant> {
        let k = self.s3.object_key(&key.rel_path());
        let out = match self.s3.client().get_object().bucket(self.s3.bucket()).key(&k).send().await {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => return None,
            Err(e) => {
                tracing::warn!(error = %map_sdk(e, &k), "result store read failed");
                return None;
            }
        };
        let mut body = out.body;
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk.ok()?);
        }
        let v = decode_entry(buf.freeze());
        if v.is_none() {
            tracing::warn!(key = k, "damaged result store entry ignored");
        }
        v
    }

    pub async fn put(&self, key: &CacheKey, v: &Variant) {
        let k = self.s3.object_key(&key.rel_path());
        let r =
            self.s3.client().put_object().bucket(self.s3.bucket()).key(&k).body(encode_entry(v).into()).send().await;
        if let Err(e) = r {
            tracing::warn!(error = %map_sdk(e, &k), "result store write failed");
        }
    }

    /// Delete every stored variant of `object`.
    pub async fn purge(&self, object: &ObjectId) {
        let prefix = self.s3.object_key(&format!("{}/{}/", &object.0[..2], object.0));
        let mut token = None;
        loop {
            let mut req = self.s3.client().list_objects_v2().bucket(self.s3.bucket()).prefix(&prefix);
            if let Some(t) = token.take() {
                req = req.continuation_token(t);
            }
            let Ok(page) = req.send().await else {
                tracing::warn!(prefix, "result store purge: listing failed");
                return;
            };
            for obj in page.contents() {
                if let Some(k) = obj.key() {
                    let _ = self.s3.client().delete_object().bucket(self.s3.bucket()).key(k).send().await;
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return,
            }
        }
    }
}
