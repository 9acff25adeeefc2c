//! The DNS seed path end to end over loopback: the real in-process [`SeedServer`] answering
//! the real [`SeedResolver`] (UDP, and TCP after truncation), plus raw wire checks.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use dsdn_bootstrap::{DnsSeed, ResolveError, SeedResolver, SeedServer};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::net::UdpSocket;

const TIMEOUT: Duration = Duration::from_secs(3);

fn seed(name: &str) -> DnsSeed {
    DnsSeed::new(name).unwrap()
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

async fn server() -> SeedServer {
    SeedServer::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn resolver_for(server: &SeedServer) -> SeedResolver {
    SeedResolver::new(&[server.local_addr()], TIMEOUT).unwrap()
}

fn set(ips: &[IpAddr]) -> HashSet<IpAddr> {
    ips.iter().copied().collect()
}

/// Sends one raw query over UDP and decodes the answer.
async fn raw_query(server: SocketAddr, name: &str, rtype: RecordType, class: DNSClass) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut query = Query::query(Name::from_ascii(name).unwrap(), rtype);
    query.set_query_class(class);
    let mut msg = Message::query();
    msg.add_query(query);
    socket
        .send_to(&msg.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(TIMEOUT, socket.recv_from(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, msg.metadata.id);
    answer
}

#[tokio::test]
async fn resolves_a_and_aaaa_over_loopback() {
    let server = server().await;
    assert_ne!(server.local_addr().port(), 0);
    let ips = vec![v4(1), v4(2), IpAddr::V6(Ipv6Addr::LOCALHOST), v4(1)];
    server.set_records("seed1.dsdn.test", ips.clone());
    let resolver = resolver_for(&server);

    let resolved = resolver.resolve(&seed("seed1.dsdn.test")).await.unwrap();
    assert_eq!(
        resolved.ips.len(),
        3,
        "duplicates removed: {:?}",
        resolved.ips
    );
    assert_eq!(set(&resolved.ips), set(&ips));
    assert!(resolved.elapsed > Duration::ZERO && resolved.elapsed < TIMEOUT);
    assert!(server.query_count() >= 2, "A and AAAA were asked");
}

#[tokio::test]
async fn one_family_is_enough() {
    let server = server().await;
    server.set_records("v4.test", vec![v4(7)]);
    server.set_records("v6.test", vec!["2001:db8::7".parse().unwrap()]);
    let resolver = resolver_for(&server);
    let r4 = resolver.resolve(&seed("v4.test")).await.unwrap();
    assert_eq!(r4.ips, [v4(7)]);
    let r6 = resolver.resolve(&seed("v6.test")).await.unwrap();
    assert_eq!(r6.ips, ["2001:db8::7".parse::<IpAddr>().unwrap()]);
}

#[tokio::test]
async fn unknown_and_empty_names_have_no_records() {
    let server = server().await;
    server.set_records("empty.test", Vec::new());
    let resolver = resolver_for(&server);
    assert_eq!(
        resolver.resolve(&seed("missing.test")).await,
        Err(ResolveError::NoRecords)
    );
    assert_eq!(
        resolver.resolve(&seed("empty.test")).await,
        Err(ResolveError::NoRecords)
    );
}

#[tokio::test]
async fn answers_are_shuffled() {
    let server = server().await;
    let ips: Vec<IpAddr> = (1..=20).map(v4).collect();
    server.set_records("many.test", ips.clone());
    let resolver = resolver_for(&server);
    let mut orders = HashSet::new();
    for _ in 0..5 {
        let r = resolver.resolve(&seed("many.test")).await.unwrap();
        assert_eq!(set(&r.ips), set(&ips));
        orders.insert(r.ips);
    }
    // Five identical orders of 20 shuffled addresses: probability (1/20!)^4.
    assert!(orders.len() > 1, "never shuffled");
}

#[tokio::test]
async fn nothing_is_cached() {
    let server = server().await;
    server.set_records("seed.test", vec![v4(1)]);
    let resolver = resolver_for(&server);
    assert_eq!(
        resolver.resolve(&seed("seed.test")).await.unwrap().ips,
        [v4(1)]
    );
    let after_first = server.query_count();

    server.set_records("seed.test", vec![v4(2)]);
    assert_eq!(
        resolver.resolve(&seed("seed.test")).await.unwrap().ips,
        [v4(2)]
    );
    assert!(
        server.query_count() >= after_first + 2,
        "second lookup hit the server"
    );

    assert!(server.remove("seed.test"));
    assert!(!server.remove("seed.test"));
    assert_eq!(
        resolver.resolve(&seed("seed.test")).await,
        Err(ResolveError::NoRecords)
    );
    // And a name that did not exist a moment ago is found at once (no negative cache).
    server.set_records("seed.test", vec![v4(3)]);
    assert_eq!(
        resolver.resolve(&seed("seed.test")).await.unwrap().ips,
        [v4(3)]
    );
}

#[tokio::test]
async fn names_are_case_insensitive() {
    let server = server().await;
    server.set_records("Seed.Example.TEST.", vec![v4(9)]);
    let resolver = resolver_for(&server);
    assert_eq!(
        resolver
            .resolve(&seed("seed.example.test"))
            .await
            .unwrap()
            .ips,
        [v4(9)]
    );
    let raw = raw_query(
        server.local_addr(),
        "SEED.example.test.",
        RecordType::A,
        DNSClass::IN,
    )
    .await;
    assert_eq!(raw.answers.len(), 1);
    assert_eq!(
        raw.answers[0].name.to_string(),
        "SEED.example.test.",
        "case preserved"
    );
}

#[tokio::test]
async fn large_answers_fall_back_to_tcp() {
    let server = server().await;
    let ips: Vec<IpAddr> = (0..150u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)))
        .collect();
    server.set_records("big.test", ips.clone());
    let resolver = resolver_for(&server);
    let r = resolver.resolve(&seed("big.test")).await.unwrap();
    assert_eq!(set(&r.ips), set(&ips), "all 150 addresses arrive (via TCP)");

    // A plain UDP query without EDNS is truncated to 512 bytes with the TC bit.
    let raw = raw_query(
        server.local_addr(),
        "big.test.",
        RecordType::A,
        DNSClass::IN,
    )
    .await;
    assert!(raw.metadata.truncation);
    assert!(raw.answers.len() < 150);
}

#[tokio::test]
async fn wire_format_of_answers() {
    let server = server().await;
    server.set_records(
        "node.seeds.test",
        vec![v4(5), "2001:db8::5".parse().unwrap()],
    );
    let addr = server.local_addr();

    let a = raw_query(addr, "node.seeds.test.", RecordType::A, DNSClass::IN).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.metadata.authoritative);
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].ttl, 1);
    assert_eq!(
        a.answers[0].data,
        RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(10, 0, 0, 5)))
    );

    let aaaa = raw_query(addr, "node.seeds.test.", RecordType::AAAA, DNSClass::IN).await;
    assert_eq!(aaaa.answers.len(), 1);
    assert_eq!(aaaa.answers[0].record_type(), RecordType::AAAA);

    let any = raw_query(addr, "node.seeds.test.", RecordType::ANY, DNSClass::IN).await;
    assert_eq!(any.answers.len(), 2);

    let nodata = raw_query(addr, "node.seeds.test.", RecordType::MX, DNSClass::IN).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.metadata.authoritative && nodata.answers.is_empty());

    let parent = raw_query(addr, "seeds.test.", RecordType::A, DNSClass::IN).await;
    assert_eq!(parent.metadata.response_code, ResponseCode::NoError);
    assert!(parent.answers.is_empty());

    let nx = raw_query(addr, "other.test.", RecordType::A, DNSClass::IN).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);

    let chaos = raw_query(addr, "node.seeds.test.", RecordType::A, DNSClass::CH).await;
    assert_eq!(chaos.metadata.response_code, ResponseCode::Refused);

    assert_eq!(server.query_count(), 7);
}

#[tokio::test]
async fn silent_server_times_out_within_the_bound() {
    // A bound UDP socket that never answers, and no TCP listener.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let timeout = Duration::from_millis(400);
    let resolver = SeedResolver::new(&[silent.local_addr().unwrap()], timeout).unwrap();
    let start = Instant::now();
    let r = resolver.resolve(&seed("seed.test")).await;
    let took = start.elapsed();
    assert_eq!(r, Err(ResolveError::Timeout));
    assert!(
        took >= Duration::from_millis(150),
        "gave up too early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} for a 400 ms bound"
    );
}

#[tokio::test]
async fn stops_when_dropped() {
    let server = server().await;
    let addr = server.local_addr();
    server.set_records("seed.test", vec![v4(1)]);
    let resolver = SeedResolver::new(&[addr], Duration::from_millis(500)).unwrap();
    assert!(resolver.resolve(&seed("seed.test")).await.is_ok());
    drop(server);
    tokio::task::yield_now().await;
    assert!(resolver.resolve(&seed("seed.test")).await.is_err());

    // The address is free again: a new server binds the same port.
    let mut rebound = None;
    for _ in 0..50 {
        if let Ok(s) = SeedServer::spawn(addr).await {
            rebound = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rebound = rebound.expect("port not released");
    rebound.set_records("seed.test", vec![v4(2)]);
    let r = resolver.resolve(&seed("seed.test")).await.unwrap();
    assert_eq!(r.ips, [v4(2)]);
    rebound.shutdown().await;
}

#[tokio::test]
async fn ipv6_loopback_server() {
    // Skipped silently where the host has no IPv6 loopback.
    let Ok(server) = SeedServer::spawn("[::1]:0".parse().unwrap()).await else {
        return;
    };
    server.set_records("seed6.test", vec![v4(1)]);
    let resolver = resolver_for(&server);
    assert_eq!(
        resolver.resolve(&seed("seed6.test")).await.unwrap().ips,
        [v4(1)]
    );
}
