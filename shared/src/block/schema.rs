//! Column names, label-column naming and the Parquet settings every file of a block is written
//! with: what the writer, the reader and `inspect` must agree on.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{BlockError, FORMAT};

/// Row number in `series.parquet`, and the join key of `samples.parquet`.
pub const SERIES_ID: &str = "series_id";
/// The series' timestamp group, the join key of `timestamps.parquet`.
pub const TS_GROUP: &str = "ts_group";
/// The series' decimal scale: its integers are value × 10^scale. Null when every value of
/// the series is a float.
pub const SCALE: &str = "scale";
/// Samples of the series, its first and its last timestamp: answer series queries for a time
/// range without reading samples.
pub const NUM_SAMPLES: &str = "num_samples";
pub const MIN_TIME: &str = "min_time";
pub const MAX_TIME: &str = "max_time";
/// Position of a sample's timestamp in its group.
pub const SCRAPE: &str = "scrape";
pub const TIMESTAMP: &str = "timestamp";
/// The sample's value × 10^scale minus that of the series' previous sample in this column
/// (the first one: minus 0). Running sums give the integers back; stored as differences
/// because they are small, and `BYTE_STREAM_SPLIT` + zstd then code them close to their
/// entropy, with no penalty where one series ends and the next begins.
pub const VALUE_INT_DELTA: &str = "value_int_delta";
pub const VALUE_FLOAT: &str = "value_float";

/// The columns of `series.parquet` that are not labels.
pub(crate) const SERIES_COLUMNS: [&str; 6] =
    [SERIES_ID, TS_GROUP, SCALE, NUM_SAMPLES, MIN_TIME, MAX_TIME];

/// Prefix of a label column whose name would otherwise collide with a column above. Label
/// names that start with it get one more, so the mapping stays reversible for any UTF-8 name.
const LABEL_ESCAPE: char = '~';

/// Key of the Parquet key-value metadata entry naming the format, in every data file.
pub const FORMAT_KEY: &str = "strata.format";

/// The column that holds label `name`: the name itself, unless that is taken.
pub fn label_column(name: &str) -> Cow<'_, str> {
    if SERIES_COLUMNS.contains(&name) || name.starts_with(LABEL_ESCAPE) {
        Cow::Owned(format!("{LABEL_ESCAPE}{name}"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The label a column of `series.parquet` holds, or `None` for the other columns.
pub fn column_label(column: &str) -> Option<&str> {
    if SERIES_COLUMNS.contains(&column) {
        None
    } else {
        Some(column.strip_prefix(LABEL_ESCAPE).unwrap_or(column))
    }
}

/// How a column is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnEncoding {
    /// Sorted or slowly changing integers.
    Delta,
    /// One stream per byte of the value, so zstd finds the repetitive high bytes (float
    /// exponents, the zero high bytes of small differences) and entropy-codes the rest.
    ByteStreamSplit,
    /// Strings with few distinct values (labels).
    Dictionary,
}

/// Parquet settings of one file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileSettings {
    pub(crate) zstd_level: i32,
    pub(crate) row_group_rows: usize,
    pub(crate) data_page_rows: usize,
    pub(crate) data_page_bytes: usize,
}

/// One column to write.
#[derive(Debug)]
pub(crate) struct Column<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) array: ArrayRef,
    pub(crate) encoding: ColumnEncoding,
    /// Declared nullable whether or not this block has nulls in it, so that every block of
    /// a format version has the same schema.
    pub(crate) nullable: bool,
}

impl<'a> Column<'a> {
    pub(crate) fn required(
        name: impl Into<Cow<'a, str>>,
        array: ArrayRef,
        encoding: ColumnEncoding,
    ) -> Self {
        Self {
            name: name.into(),
            array,
            encoding,
            nullable: false,
        }
    }

    pub(crate) fn optional(
        name: impl Into<Cow<'a, str>>,
        array: ArrayRef,
        encoding: ColumnEncoding,
    ) -> Self {
        Self {
            nullable: true,
            ..Self::required(name, array, encoding)
        }
    }
}

/// Writes `columns` as one Parquet file: zstd, page-level statistics and page index, the
/// format key, and `sorted_by` (leading column indexes) declared as the sort order.
pub(crate) fn write_file(
    file: &str,
    columns: Vec<Column<'_>>,
    sorted_by: &[usize],
    settings: FileSettings,
) -> Result<Bytes, BlockError> {
    let specs: Vec<ColumnSpec<'_>> = columns
        .iter()
        .map(|c| ColumnSpec {
            nullable: c.nullable,
            ..ColumnSpec::required(c.name.clone(), c.array.data_type().clone(), c.encoding)
        })
        .collect();
    let mut writer = FileWriter::try_new(file, &specs, sorted_by, settings)?;
    writer.write(columns.into_iter().map(|c| c.array).collect())?;
    writer.finish()
}

/// One column of a file written batch by batch: [`Column`] without the data.
#[derive(Debug)]
pub(crate) struct ColumnSpec<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) data_type: DataType,
    pub(crate) encoding: ColumnEncoding,
    pub(crate) nullable: bool,
}

impl<'a> ColumnSpec<'a> {
    pub(crate) fn required(
        name: impl Into<Cow<'a, str>>,
        data_type: DataType,
        encoding: ColumnEncoding,
    ) -> Self {
        Self {
            name: name.into(),
            data_type,
            encoding,
            nullable: false,
        }
    }

    pub(crate) fn optional(
        name: impl Into<Cow<'a, str>>,
        data_type: DataType,
        encoding: ColumnEncoding,
    ) -> Self {
        Self {
            nullable: true,
            ..Self::required(name, data_type, encoding)
        }
    }
}

/// A Parquet file written one batch of columns at a time, with the settings of
/// [`write_file`]. A batch of at most `row_group_rows` rows that fills the row group in
/// progress is encoded and flushed to the file before [`FileWriter::write`] returns, so the
/// caller can drop its arrays and holds at most one row group of them.
pub(crate) struct FileWriter<'f> {
    file: &'f str,
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
}

impl<'f> FileWriter<'f> {
    pub(crate) fn try_new(
        file: &'f str,
        columns: &[ColumnSpec<'_>],
        sorted_by: &[usize],
        settings: FileSettings,
    ) -> Result<Self, BlockError> {
        let level =
            ZstdLevel::try_new(settings.zstd_level).map_err(parquet_error(file, "zstd level"))?;
        let sorting = sorted_by
            .iter()
            .map(|&i| SortingColumn {
                column_idx: i as i32,
                descending: false,
                nulls_first: false,
            })
            .collect();
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(settings.row_group_rows))
            .set_data_page_row_count_limit(settings.data_page_rows)
            .set_data_page_size_limit(settings.data_page_bytes)
            .set_dictionary_enabled(false)
            .set_sorting_columns(Some(sorting))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                FORMAT_KEY.to_string(),
                FORMAT.to_string(),
            )]));
        for column in columns {
            let path = ColumnPath::from(column.name.as_ref());
            properties = match column.encoding {
                ColumnEncoding::Delta => {
                    properties.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED)
                }
                ColumnEncoding::ByteStreamSplit => {
                    properties.set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT)
                }
                ColumnEncoding::Dictionary => properties.set_column_dictionary_enabled(path, true),
            };
        }

        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(c.name.as_ref(), c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        ));
        // Only standard Parquet types are used, so the Arrow schema adds nothing a reader needs.
        let root = file.strip_suffix(".parquet").unwrap_or(file).to_string();
        let options = ArrowWriterOptions::new()
            .with_properties(properties.build())
            .with_skip_arrow_metadata(true)
            .with_schema_root(root);
        let writer = ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options)
            .map_err(parquet_error(file, "creating writer"))?;
        Ok(Self {
            file,
            schema,
            writer,
        })
    }

    /// Appends one batch: `arrays` in the order of the columns given to
    /// [`FileWriter::try_new`], all of the same length.
    pub(crate) fn write(&mut self, arrays: Vec<ArrayRef>) -> Result<(), BlockError> {
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(|source| {
            BlockError::Arrow {
                file: self.file.to_string(),
                what: "assembling columns",
                source,
            }
        })?;
        self.writer
            .write(&batch)
            .map_err(parquet_error(self.file, "writing"))
    }

    /// Flushes the last row group and returns the file.
    pub(crate) fn finish(self) -> Result<Bytes, BlockError> {
        let bytes = self
            .writer
            .into_inner()
            .map_err(parquet_error(self.file, "finishing"))?;
        Ok(Bytes::from(bytes))
    }
}

fn parquet_error<'a>(
    file: &'a str,
    what: &'static str,
) -> impl FnOnce(parquet::errors::ParquetError) -> BlockError + 'a {
    move |source| BlockError::Parquet {
        file: file.to_string(),
        what,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_columns_never_collide_with_structural_columns() {
        for name in [
            "job",
            "__name__",
            "series_id",
            "~x",
            "~~",
            "scale",
            "",
            "a.b",
        ] {
            let column = label_column(name);
            assert_eq!(column_label(&column), Some(name), "{name} -> {column}");
        }
        assert_eq!(column_label("series_id"), None);
        assert_eq!(label_column("job"), "job");
        assert_eq!(label_column("scale"), "~scale");
    }
}
