//! Search keys: a user's name and department folded so that a search finds
//! them whatever the script, case or accents, the same on SQLite and
//! PostgreSQL.
//!
//! SQLite's `LOWER()` folds ASCII only, so `Łukasz` was not found as
//! `łukasz` there, and neither database found `Zoë` as `zoe`. The server
//! keeps a folded copy of both (`app_user.search_key`), written with every
//! insert and update, and folds the query the same way
//! ([`curbside_proto::names::fold`], which the CLI matches names with too).

use curbside_proto::names::fold;

/// The search key of a user: their name and department, folded, on two
/// lines (a folded query has no line break, so it cannot match across).
pub fn user_key(display_name: &str, department: &str) -> String {
    format!("{}\n{}", fold(display_name), fold(department))
}

/// `query`, folded, as a `LIKE` pattern matching it anywhere, with `%`,
/// `_` and the escape character itself escaped (`ESCAPE '\'`).
pub fn contains_pattern(query: &str) -> String {
    let mut pattern = String::from("%");
    for c in fold(query).chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_across_case_accents_and_scripts() {
        let key = user_key("Łukasz Ørsted", "Kardiologie");
        for query in ["łukasz", "ŁUKASZ", "lukasz", "orsted", "ØRSTED"] {
            assert!(key.contains(&fold(query)), "{query}");
        }
        assert!(user_key("Zoë Ünal", "").contains(&fold("zoe")));
        assert!(user_key("Zoë Ünal", "").contains(&fold("UNAL")));
        // Other scripts meet their own spelling.
        assert!(user_key("Дмитрий", "").contains(&fold("дмитрий")));
        // A query never spans name and department.
        assert!(!key.contains(&fold("orsted kardiologie")));
        assert_eq!(contains_pattern(" 50%_a\\b "), "%50\\%\\_a\\\\b%");
    }
}
