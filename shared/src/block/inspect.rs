//! A human-readable account of a block: its meta, each file's Parquet schema, row groups and
//! column chunks (encodings, sizes, statistics, page index), and bytes per sample. Reads only
//! footers and page indexes, so it is cheap on any block; damage is reported, not fatal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use super::schema::{VALUE_FLOAT, VALUE_INT_DELTA};
use super::{
    BlockError, BlockMeta, DATA_FILES, META_FILE, SAMPLES_FILE, SERIES_FILE, TIMESTAMPS_FILE,
};

/// Describes the block `meta` and `files` (file name to contents; `meta.json` is serialized
/// from `meta` when absent) for a person: what `strata inspect` style tools print.
pub fn inspect_report(
    meta: &BlockMeta,
    files: &HashMap<String, Bytes>,
) -> Result<String, BlockError> {
    let meta_bytes = match files.get(META_FILE) {
        Some(bytes) => bytes.len() as u64,
        None => meta.to_json_bytes()?.len() as u64,
    };
    let mut names: Vec<&str> = DATA_FILES.to_vec();
    let mut others: Vec<&str> = files
        .keys()
        .map(String::as_str)
        .filter(|n| *n != META_FILE && !DATA_FILES.contains(n))
        .collect();
    others.sort_unstable();
    names.extend(others);

    let parsed: Vec<DataFile<'_>> = names
        .iter()
        .map(|&name| {
            let bytes = files.get(name);
            let metadata = bytes.map(|b| {
                ParquetMetaDataReader::new()
                    .with_page_index_policy(PageIndexPolicy::Optional)
                    .parse_and_finish(b)
                    .map_err(|e| e.to_string())
            });
            DataFile {
                name,
                bytes,
                metadata,
            }
        })
        .collect();
    let rows = |file: &str| {
        parsed
            .iter()
            .find(|f| f.name == file)
            .and_then(|f| f.metadata.as_ref()?.as_ref().ok())
            .map(|m| m.file_metadata().num_rows() as u64)
    };
    let total: u64 = meta_bytes
        + files
            .iter()
            .filter(|(n, _)| *n != META_FILE)
            .map(|(_, b)| b.len() as u64)
            .sum::<u64>();
    let samples = meta.stats.num_samples;
    let per_sample = |bytes: u64| bytes as f64 / samples.max(1) as f64;

    let mut out = String::new();
    let s = &meta.strata;
    let range = Duration::from_millis(meta.max_time.saturating_sub(meta.min_time).max(0) as u64);
    let resolution = match s.resolution {
        0 => "raw".to_string(),
        r => humantime::format_duration(Duration::from_millis(r.max(0) as u64)).to_string(),
    };
    // Writing to a String cannot fail; the results are ignored below for that reason.
    let _ = writeln!(out, "block {} of tenant {:?}", meta.ulid, s.tenant);
    let _ = writeln!(
        out,
        "  range [{}, {}) ms, {}; resolution {resolution}; compaction level {}, {} source(s); from {:?}",
        meta.min_time,
        meta.max_time,
        humantime::format_duration(range),
        meta.compaction.level,
        meta.compaction.sources.len(),
        s.source_ingester
    );
    let _ = writeln!(
        out,
        "  format {} version {} (meta.json version {})",
        s.format, s.format_version, meta.version
    );
    let _ = writeln!(
        out,
        "  {} series, {} samples, {} timestamp groups' rows; {} bytes in all = {:.4} bytes/sample",
        meta.stats.num_series,
        samples,
        rows(TIMESTAMPS_FILE).map_or("?".to_string(), |r| r.to_string()),
        total,
        per_sample(total)
    );
    for (file, stat) in [
        (SERIES_FILE, meta.stats.num_series),
        (SAMPLES_FILE, samples),
    ] {
        if let Some(r) = rows(file).filter(|&r| r != stat) {
            let _ = writeln!(out, "  WARNING: {file} has {r} rows, meta.json says {stat}");
        }
    }

    let _ = writeln!(
        out,
        "\n  {:<22} {:>12} {:>10} {:>10}",
        "file", "bytes", "B/sample", "rows"
    );
    let _ = writeln!(
        out,
        "  {META_FILE:<22} {meta_bytes:>12} {:>10.4}",
        per_sample(meta_bytes)
    );
    for DataFile {
        name,
        bytes,
        metadata,
    } in &parsed
    {
        let size = bytes.map(|b| b.len() as u64);
        let listed = s
            .files
            .iter()
            .find(|f| f.name == *name)
            .map(|f| f.size_bytes);
        let note = match (size, listed) {
            (None, _) => "MISSING".to_string(),
            (Some(size), Some(listed)) if size != listed => {
                format!("WARNING: meta.json says {listed} bytes")
            }
            (Some(_), None) => "not listed in meta.json".to_string(),
            _ => String::new(),
        };
        let row_count = match metadata {
            Some(Ok(m)) => m.file_metadata().num_rows().to_string(),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {name:<22} {:>12} {:>10.4} {row_count:>10} {note}",
            size.unwrap_or(0),
            per_sample(size.unwrap_or(0))
        );
    }

    for file in &parsed {
        let name = file.name;
        match &file.metadata {
            None => {}
            Some(Err(e)) => {
                let _ = writeln!(out, "\n{name}: cannot read the footer: {e}");
            }
            Some(Ok(metadata)) => describe_file(&mut out, name, metadata),
        }
    }
    Ok(out)
}

/// A data file as found in the block, with its footer if there is one to read.
#[derive(Debug)]
struct DataFile<'a> {
    name: &'a str,
    bytes: Option<&'a Bytes>,
    /// `None` when the file is missing, the error text when its footer does not parse.
    metadata: Option<Result<ParquetMetaData, String>>,
}

/// Schema, key-value metadata, and one line per column chunk.
fn describe_file(out: &mut String, name: &str, metadata: &ParquetMetaData) {
    let file_metadata = metadata.file_metadata();
    let _ = writeln!(
        out,
        "\n{name}: {} rows, {} row group(s)",
        file_metadata.num_rows(),
        metadata.num_row_groups()
    );
    let mut schema = Vec::new();
    parquet::schema::printer::print_schema(&mut schema, file_metadata.schema_descr().root_schema());
    for line in String::from_utf8_lossy(&schema).lines() {
        let _ = writeln!(out, "    {line}");
    }
    for kv in file_metadata.key_value_metadata().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  key-value: {} = {}",
            kv.key,
            kv.value.as_deref().unwrap_or("")
        );
    }
    for (index, row_group) in metadata.row_groups().iter().enumerate() {
        let _ = writeln!(
            out,
            "  row group {index}: {} rows, {} bytes compressed, {} uncompressed",
            row_group.num_rows(),
            row_group.compressed_size(),
            row_group.total_byte_size()
        );
        let _ = writeln!(
            out,
            "    {:<22} {:<10} {:<36} {:>10} {:>12} {:<19} {:>5} page index",
            "column", "type", "encodings", "compressed", "uncompressed", "statistics", "pages"
        );
        let page_index = RowGroupPageIndex::new(metadata, index);
        for (c, column) in row_group.columns().iter().enumerate() {
            let encodings: Vec<String> = column.encodings().map(|e| format!("{e:?}")).collect();
            let statistics = match column.statistics() {
                None => "none".to_string(),
                Some(stats) => {
                    let min_max = if stats.min_bytes_opt().is_some() {
                        "min/max"
                    } else {
                        "-"
                    };
                    match stats.null_count_opt() {
                        Some(nulls) => format!("{min_max} {nulls} nulls"),
                        None => min_max.to_string(),
                    }
                }
            };
            let pages = page_index
                .offset_index(c)
                .map_or("?".to_string(), |o| o.page_locations().len().to_string());
            let index_kinds = match (
                page_index.column_index(c).is_some(),
                page_index.offset_index(c).is_some(),
            ) {
                (true, true) => "column+offset",
                (false, true) => "offset only",
                (true, false) => "column only",
                (false, false) => "none",
            };
            let _ = writeln!(
                out,
                "    {:<22} {:<10} {:<36} {:>10} {:>12} {:<19} {:>5} {index_kinds}",
                column.column_path().string(),
                format!("{:?}", column.column_type()),
                encodings.join(","),
                column.compressed_size(),
                column.uncompressed_size(),
                statistics,
                pages
            );
        }
    }
    if name == SAMPLES_FILE {
        describe_value_split(out, metadata);
    }
}

/// How many samples went to each value column, from the null counts.
fn describe_value_split(out: &mut String, metadata: &ParquetMetaData) {
    let rows = metadata.file_metadata().num_rows().max(0) as u64;
    let schema = metadata.file_metadata().schema_descr();
    for value_column in [VALUE_INT_DELTA, VALUE_FLOAT] {
        let Some(c) = (0..schema.num_columns()).find(|&c| schema.column(c).name() == value_column)
        else {
            continue;
        };
        let nulls: Option<u64> = metadata
            .row_groups()
            .iter()
            .map(|rg| rg.column(c).statistics().and_then(|s| s.null_count_opt()))
            .sum();
        if let Some(nulls) = nulls {
            let present = rows.saturating_sub(nulls);
            let _ = writeln!(
                out,
                "  {value_column}: {present} samples ({:.2} %)",
                100.0 * present as f64 / rows.max(1) as f64
            );
        }
    }
}

/// The page index of one row group: which columns have a column index (with statistics) and an
/// offset index.
pub(crate) struct RowGroupPageIndex<'a> {
    metadata: &'a parquet::file::metadata::ParquetMetaData,
    row_group: usize,
}

impl<'a> RowGroupPageIndex<'a> {
    pub(crate) fn new(
        metadata: &'a parquet::file::metadata::ParquetMetaData,
        row_group: usize,
    ) -> Self {
        Self {
            metadata,
            row_group,
        }
    }

    /// The column index of column `c`, when it has one with statistics.
    pub(crate) fn column_index(
        &self,
        c: usize,
    ) -> Option<&'a parquet::file::page_index::column_index::ColumnIndexMetaData> {
        self.metadata
            .column_index()
            .and_then(|rgs| rgs.get(self.row_group))
            .and_then(|cols| cols.get(c))
            .filter(|index| {
                !matches!(
                    index,
                    parquet::file::page_index::column_index::ColumnIndexMetaData::NONE
                )
            })
    }

    /// The offset index (page locations) of column `c`.
    pub(crate) fn offset_index(
        &self,
        c: usize,
    ) -> Option<&'a parquet::file::page_index::offset_index::OffsetIndexMetaData> {
        self.metadata
            .offset_index()
            .and_then(|rgs| rgs.get(self.row_group))
            .and_then(|cols| cols.get(c))
    }
}
