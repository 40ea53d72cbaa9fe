//! Reading a CSV audit export (RFC 4180, as the server writes it) with the
//! `csv` crate: each field with the export's formula guard undone, and
//! each record bounded in size.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

/// The records of a CSV export, each field with the export's formula guard
/// (a leading `'`) undone. A record longer than its bound is refused, and
/// the input is never read further than that past a record's start, so a
/// file without line breaks cannot fill memory.
pub(super) struct CsvRecords<R> {
    reader: csv::Reader<Bounded<R>>,
    /// Where the record being read starts (a byte offset), for [`Bounded`].
    start: Rc<Cell<u64>>,
    /// The longest record accepted, in bytes with its line break.
    max: u64,
    record: csv::StringRecord,
}

impl<R: Read> CsvRecords<R> {
    /// The records of `source`, none longer than `max` bytes.
    pub(super) fn new(source: R, max: usize) -> Self {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        let start = Rc::new(Cell::new(0));
        let reader = csv::ReaderBuilder::new()
            // The header is checked as the first record,
            .has_headers(false)
            // and a record of the wrong length is reported as such.
            .flexible(true)
            .from_reader(Bounded {
                source,
                given: 0,
                start: Rc::clone(&start),
                max,
            });
        Self {
            reader,
            start,
            max,
            record: csv::StringRecord::new(),
        }
    }
}

impl<R: Read> Iterator for CsvRecords<R> {
    type Item = std::io::Result<Vec<String>>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.reader.position().byte();
        self.start.set(start);
        match self.reader.read_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(error) => {
                return Some(Err(match error.into_kind() {
                    csv::ErrorKind::Io(error) => error,
                    // As reading the file as text said before.
                    csv::ErrorKind::Utf8 { .. } => std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "stream did not contain valid UTF-8",
                    ),
                    _ => std::io::Error::other("not a CSV record"),
                }));
            }
        }
        if self.reader.position().byte() - start > self.max {
            return Some(Err(too_long()));
        }
        Some(Ok(self
            .record
            .iter()
            .map(|field| field.strip_prefix('\'').unwrap_or(field).to_owned())
            .collect()))
    }
}

/// A source that gives no more than `max` bytes (and one, to see past the
/// bound) from the start of the record being read: `csv` reads on until a
/// record ends.
struct Bounded<R> {
    source: R,
    /// How many bytes it has given.
    given: u64,
    /// Where the record being read starts.
    start: Rc<Cell<u64>>,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let end = self.start.get().saturating_add(self.max).saturating_add(1);
        let room = end.saturating_sub(self.given);
        if room == 0 {
            return Err(too_long());
        }
        let room = buffer
            .len()
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        let read = self.source.read(&mut buffer[..room])?;
        self.given += u64::try_from(read).unwrap_or(u64::MAX);
        Ok(read)
    }
}

fn too_long() -> std::io::Error {
    std::io::Error::other("a record is too long")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_undo_quoting_and_the_formula_guard() {
        let input = "\"a,b\",\"say \"\"hi\"\"\",\"x\r\ny\",'=1+1,''q,plain\r\nnext\r\n";
        let mut records = CsvRecords::new(input.as_bytes(), 64 * 1024);
        assert_eq!(
            records.next().unwrap().unwrap(),
            vec!["a,b", "say \"hi\"", "x\r\ny", "=1+1", "'q", "plain"]
        );
        assert_eq!(records.next().unwrap().unwrap(), vec!["next"]);
        assert!(records.next().is_none());
    }

    #[test]
    fn a_record_past_the_bound_is_refused() {
        let input = format!("seq,kind\r\n{}", "x".repeat(100));
        let mut records = CsvRecords::new(input.as_bytes(), 16);
        assert_eq!(records.next().unwrap().unwrap(), vec!["seq", "kind"]);
        let error = records.next().unwrap().unwrap_err();
        assert_eq!(error.to_string(), "a record is too long");
    }
}
