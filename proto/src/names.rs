//! People's names as the server searches them and the CLI matches them:
//! folded so that `Łukasz`, `ŁUKASZ` and `lukasz` are one name, and `Zoë`
//! is found as `zoe`, the same on every database and in every client.
//!
//! Folding transliterates each letter to ASCII (`deunicode`: `Ł` to `L`,
//! `ø` to `o`, `ë` to `e`, other scripts to their usual Latin spelling),
//! lower-cases it, and makes runs of white space one space.

/// `text` folded for search and comparison.
pub fn fold(text: &str) -> String {
    let ascii = deunicode::deunicode(text).to_ascii_lowercase();
    ascii.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Titles a name may be given with or without.
const TITLES: [&str; 3] = ["dr", "prof", "professor"];

/// `name` folded, without a leading title ("Dr. Ana Alvarez" and "ana
/// alvarez" are the same name).
pub fn bare(name: &str) -> String {
    without_title(fold(name))
}

/// `name` in lower case with its white space made single, without a
/// leading title, but not transliterated.
fn bare_as_written(name: &str) -> String {
    let lower = name.to_lowercase();
    without_title(lower.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn without_title(name: String) -> String {
    if let Some((first, rest)) = name.split_once(' ')
        && TITLES.contains(&first.trim_end_matches('.'))
    {
        return rest.to_owned();
    }
    name
}

/// Whether `given` is the whole of the name `listed` (case and a title
/// aside): never a part of it, never a department. A name typed in plain
/// ASCII also matches its accented or transliterated form ("lukasz orsted"
/// is "Łukasz Ørsted"); a name typed with other letters must match as
/// written, since transliteration makes different names one ("王伟" and
/// "汪伟" are both "wang wei").
pub fn same_name(listed: &str, given: &str) -> bool {
    if given.is_ascii() {
        let given = bare(given);
        !given.is_empty() && bare(listed) == given
    } else {
        let given = bare_as_written(given);
        !given.is_empty() && bare_as_written(listed) == given
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_across_case_accents_and_scripts() {
        assert_eq!(fold(" Łukasz   Ørsted "), "lukasz orsted");
        assert_eq!(fold("ZOË"), "zoe");
        assert_eq!(fold("Дмитрий"), fold("дмитрий"));
    }

    #[test]
    fn only_a_whole_name_is_the_same_name() {
        assert!(same_name("Dr. Ben Brown", "ben brown"));
        assert!(same_name("Ben Brown", "Dr. Ben Brown"));
        assert!(same_name("Dr. Łukasz Ørsted", "lukasz orsted"));
        assert!(same_name("Prof. Zoë Ünal", "zoe unal"));
        assert!(!same_name("Dr. Ben Browning", "Ben Brown"));
        assert!(!same_name("Dr. Ben Brown", "Ben"));
        assert!(!same_name("Dr. Ben Brown", "Dr."));
        assert!(!same_name("Dr. Ben Brown", ""));
        // "Dr" alone is a name, not a title.
        assert!(same_name("Dr", "dr"));
        // Typed with its own letters, a name must match as written.
        assert!(same_name("Dr. Łukasz Ørsted", "ŁUKASZ ØRSTED"));
        assert!(!same_name("Dr. Lukasz Orsted", "Łukasz Ørsted"));
        assert!(same_name("王伟", "王伟"));
        assert!(!same_name("汪伟", "王伟"));
    }
}
