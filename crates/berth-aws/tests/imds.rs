//! `Imds` against berth-testing's `FakeImds`, a local metadata server that speaks
//! IMDSv2 only: it hands out session tokens on `PUT /latest/api/token` and answers `401`
//! to every request without a valid token, so a passing test proves the adapter uses
//! IMDSv2, never v1.
#![cfg(feature = "imds")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

use berth_aws::imds::{Imds, InstanceIdentity, SpotAction, SpotInterruption};
use berth_core::domain::InstanceId;
use berth_core::Error;
use berth_testing::imds::{FakeImds, IDENTITY_PATH, SPOT_ACTION_PATH as SPOT_PATH};

const IDENTITY: &str = r#"{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "eu-west-1b",
  "imageId" : "ami-12c6146b",
  "instanceId" : "i-0abc123def4567890",
  "instanceType" : "m6gd.large",
  "pendingTime" : "2024-05-01T10:00:00Z",
  "privateIp" : "10.1.2.3",
  "region" : "eu-west-1",
  "version" : "2017-09-30"
}"#;

#[tokio::test]
async fn identity_is_read_with_an_imdsv2_session_token() {
    let server = FakeImds::start();
    server.route(IDENTITY_PATH, 200, IDENTITY);

    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    let identity = imds.identity().await.unwrap();
    assert_eq!(
        identity,
        InstanceIdentity {
            instance_id: InstanceId::new("i-0abc123def4567890").unwrap(),
            region: "eu-west-1".into(),
            availability_zone: "eu-west-1b".into(),
            private_ip: "10.1.2.3".parse().unwrap(),
        }
    );

    // A second read reuses the cached token.
    imds.identity().await.unwrap();
    let state = server.requests();
    assert_eq!(state.tokens_issued, 1);
    assert_eq!(state.authorised_gets, [IDENTITY_PATH, IDENTITY_PATH]);
    assert!(state.rejected.is_empty(), "{:?}", state.rejected);
}

#[test]
fn the_test_server_refuses_imdsv1() {
    // Guards the test above: an IMDSv1 request (no token) is refused by the server.
    let server = FakeImds::start();
    server.route(IDENTITY_PATH, 200, IDENTITY);
    let endpoint = server.endpoint();
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {IDENTITY_PATH} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(server.requests().rejected, [format!("GET {IDENTITY_PATH}")]);
}

#[tokio::test]
async fn no_spot_interruption_is_none() {
    let server = FakeImds::start();
    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    assert_eq!(imds.spot_interruption().await.unwrap(), None);
    let state = server.requests();
    assert_eq!(state.authorised_gets, [SPOT_PATH], "asked, and got a 404");
    assert!(state.rejected.is_empty());
}

#[tokio::test]
async fn a_scheduled_spot_interruption_is_reported() {
    let server = FakeImds::start();
    server.route(
        SPOT_PATH,
        200,
        r#"{"action": "terminate", "time": "2024-05-01T10:02:00Z"}"#,
    );
    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    let notice = imds.spot_interruption().await.unwrap();
    assert_eq!(
        notice,
        Some(SpotInterruption {
            action: SpotAction::Terminate,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_557_720),
        })
    );
}

const REBALANCE_PATH: &str = "/latest/meta-data/events/recommendations/rebalance";

#[tokio::test]
async fn a_rebalance_recommendation_is_none_until_ec2_makes_one() {
    let server = FakeImds::start();
    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    assert_eq!(imds.rebalance_recommendation().await.unwrap(), None);
    server.route(
        REBALANCE_PATH,
        200,
        r#"{"noticeTime": "2024-05-01T10:02:00Z"}"#,
    );
    assert_eq!(
        imds.rebalance_recommendation().await.unwrap(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_557_720))
    );
    server.route(REBALANCE_PATH, 200, r#"{"noticeTime": "soon"}"#);
    let err = imds.rebalance_recommendation().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Provider {
                retryable: false,
                ..
            }
        ) && err.to_string().contains("noticeTime"),
        "{err:?}"
    );
    let state = server.requests();
    assert_eq!(state.authorised_gets, [REBALANCE_PATH; 3]);
    assert!(state.rejected.is_empty());
}

#[tokio::test]
async fn a_missing_identity_document_is_not_found_and_garbage_is_a_provider_error() {
    let server = FakeImds::start();
    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    let err = imds.identity().await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    server.route(IDENTITY_PATH, 200, "not json");
    let err = imds.identity().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Provider {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_metadata_service_is_retryable() {
    // A port nobody listens on: bind one, then free it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let imds = Imds::with_endpoint(&format!("http://127.0.0.1:{port}")).unwrap();
    let err = imds.identity().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[test]
fn a_bad_endpoint_is_invalid() {
    let err = Imds::with_endpoint("not a url").unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}
