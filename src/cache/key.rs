//! Cache keys: primary part (origin, object key, origin version) + variant part (canonical params and
//! output format). The object id alone finds every variant of an object (purge).

use std::fmt;

/// Identifies one object at one origin, whatever its version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId(pub String);

impl ObjectId {
    pub fn new(origin: &str, key: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(origin.as_bytes());
        h.update(&[0]);
        h.update(key.as_bytes());
        ObjectId(h.finalize().to_hex()[..32].to_string())
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One variant of one version of one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub object: ObjectId,
    /// Hash of (origin version, canonical variant): the file name on disk and in the shared store.
    pub variant: String,
}

impl CacheKey {
    pub fn new(origin: &str, key: &str, version: &str, variant: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(version.as_bytes());
        h.update(&[0]);
        h.update(variant.as_bytes());
        CacheKey { object: ObjectId::new(origin, key), variant: h.finalize().to_hex()[..32].to_string() }
    }

    /// Relative path of the entry: `{oid[..2]}/{oid}/{variant}` (used by the disk tier and the store).
    pub fn rel_path(&self) -> String {
        format!("{}/{}/{}", &self.object.0[..2], self.object.0, self.variant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_groups_variants_and_every_part_counts() {
        let a = CacheKey::new("fs", "a.jpg", "v1", "w=10,fm=webp,q=80");
        assert_eq!(a, CacheKey::new("fs", "a.jpg", "v1", "w=10,fm=webp,q=80"));
        let b = CacheKey::new("fs", "a.jpg", "v1", "w=11,fm=webp,q=80");
        assert_eq!(a.object, b.object, "variants of one object share the object id");
        assert_ne!(a.variant, b.variant);
        assert_ne!(a.variant, CacheKey::new("fs", "a.jpg", "v2", "w=10,fm=webp,q=80").variant);
        assert_ne!(a.object, CacheKey::new("s3", "a.jpg", "v1", "w=10,fm=webp,q=80").object);
        assert!(a.rel_path().starts_with(&format!("{}/{}/", &a.object.0[..2], a.object.0)));
    }
}
