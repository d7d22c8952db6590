use super::super::pattern::ec2_to_glob;

#[test]
fn ec2_wildcards_become_glob_and_literals_stay_literal() {
    assert_eq!(ec2_to_glob("web-*"), "web-*");
    assert_eq!(ec2_to_glob("i-?"), "i-?");
    assert_eq!(ec2_to_glob("a\\*b"), "a[*]b");
    assert_eq!(ec2_to_glob("a\\?b"), "a[?]b");
    assert_eq!(ec2_to_glob("a\\\\b"), "a\\b");
    assert_eq!(ec2_to_glob("[x]"), "[[]x]");
    assert_eq!(ec2_to_glob("trailing\\"), "trailing\\");
    assert_eq!(ec2_to_glob(""), "");
}
