//! `strata block inspect`: prints what a block holds, from a local directory or object storage.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use strata_shared::block::{inspect_report, BlockMeta, META_FILE};

use crate::config::Config;

pub(crate) async fn run(config: &Config, location: &str) -> anyhow::Result<()> {
    let files = if std::path::Path::new(location).is_dir() {
        read_local(location)?
    } else if location.contains("://") {
        let url =
            url::Url::parse(location).with_context(|| format!("{location} is not a valid URL"))?;
        let (store, prefix) = object_store::parse_url_opts(
            &url,
            std::env::vars().filter(|(k, _)| k.starts_with("AWS_")),
        )
        .with_context(|| format!("cannot open {location}"))?;
        read_store(Arc::from(store), &prefix).await?
    } else {
        let store = config.blocks_storage.build()?;
        read_store(store, &ObjectPath::from(location.trim_matches('/'))).await?
    };
    let meta_bytes = files
        .get(META_FILE)
        .with_context(|| format!("{location} has no {META_FILE}: it is not a complete block"))?;
    let meta: BlockMeta = serde_json::from_slice(meta_bytes)
        .with_context(|| format!("{location}/{META_FILE} is not a valid block meta"))?;
    print!("{}", inspect_report(&meta, &files)?);
    Ok(())
}

fn read_local(dir: &str) -> anyhow::Result<HashMap<String, Bytes>> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {dir}"))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(
                name,
                Bytes::from(
                    std::fs::read(entry.path())
                        .with_context(|| format!("cannot read {}", entry.path().display()))?,
                ),
            );
        }
    }
    Ok(files)
}

async fn read_store(
    store: Arc<dyn ObjectStore>,
    prefix: &ObjectPath,
) -> anyhow::Result<HashMap<String, Bytes>> {
    let objects: Vec<_> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .with_context(|| format!("cannot list {prefix}"))?;
    let mut files = HashMap::new();
    for object in objects {
        let name = object.location.filename().unwrap_or_default().to_string();
        let bytes = store
            .get(&object.location)
            .await?
            .bytes()
            .await
            .with_context(|| format!("cannot read {}", object.location))?;
        files.insert(name, bytes);
    }
    if files.is_empty() {
        anyhow::bail!("no objects under {prefix}");
    }
    Ok(files)
}
