use super::super::clock::*;

#[test]
fn iso8601_known_instants() {
    assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        iso8601_millis(1_440_938_160_123),
        "2015-08-30T12:36:00.123Z"
    );
    assert_eq!(iso8601_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(iso8601_millis(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(
        iso8601_millis(4_102_444_799_999),
        "2099-12-31T23:59:59.999Z"
    );
}

#[test]
fn iso8601_clamps_to_four_digit_years() {
    assert_eq!(iso8601_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
    assert_eq!(iso8601_millis(i64::MIN), "0000-01-01T00:00:00.000Z");
}

#[test]
fn civil_round_trip_over_centuries() {
    for days in (-800_000..800_000).step_by(97) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
}

#[test]
fn amz_date_round_trip_and_rejects() {
    assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
    assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
    assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
    for bad in [
        "",
        "20150830T123600",
        "2015-08-30T12:36:00Z",
        "20150830t123600Z",
        "20230229T000000Z",
        "20151330T000000Z",
        "20150800T000000Z",
        "20150830T246000Z",
        "20150830T126000Z",
        "2015083+T123600Z",
        "２015830T123600Z",
        // 16 bytes, 'T' and 'Z' in place, a two-byte character across the
        // year's end: once a panic (a &str sliced inside a character).
        "201é830T123600Z",
        "20150830T1é360Z",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad:?}");
    }
}

#[test]
fn now_is_after_2020() {
    assert!(now_unix_ms() > 1_577_836_800_000);
}
