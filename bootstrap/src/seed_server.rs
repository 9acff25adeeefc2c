//! A small authoritative DNS server for seed names, for local networks (`dsdn-agent devnet`)
//! and tests of the DNS seed path of 28.1.A §1 / 28.1.B §1 without a real domain.
//!
//! [`SeedServer`] answers over UDP and TCP on one address:
//! - `A` / `AAAA` (and `ANY`) for a known name: its IPv4 / IPv6 addresses, TTL 1 s,
//!   authoritative;
//! - another type for a known name, or a name that is a parent of a known name: NOERROR with
//!   no answers (NODATA), authoritative;
//! - an unknown name: NXDOMAIN, authoritative;
//! - a class other than `IN`: REFUSED; an opcode other than `QUERY`: NOTIMP; not exactly one
//!   question: FORMERR.
//!
//! Names are matched case-insensitively, with or without the trailing dot. Large answers are
//! truncated on UDP (TC bit) and complete on TCP.

use std::collections::HashMap;
use std::io;
use std::iter;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::{A, AAAA};
use hickory_server::proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

/// TTL of every answer, in seconds: resolvers should not keep seed answers around.
pub const ANSWER_TTL_SECS: u32 = 1;

/// Idle limit of a TCP client connection.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// Responses buffered per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// How many ephemeral ports to try when UDP's port is taken on TCP (port 0 only).
const BIND_ATTEMPTS: usize = 16;

type Records = Arc<RwLock<HashMap<String, Vec<IpAddr>>>>;

/// Lowercase, without the trailing dot: the key of the record table.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A running seed DNS server. Dropping it (or [`SeedServer::shutdown`]) stops it.
pub struct SeedServer {
    local_addr: SocketAddr,
    records: Records,
    answered: Arc<AtomicU64>,
    server: Server<SeedHandler>,
}

impl std::fmt::Debug for SeedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedServer")
            .field("local_addr", &self.local_addr)
            .field("query_count", &self.query_count())
            .finish_non_exhaustive()
    }
}

impl SeedServer {
    /// Binds UDP and TCP on `bind` and starts serving on the current tokio runtime, with no
    /// records. With port 0, UDP gets an ephemeral port first and TCP binds the same port
    /// (another port is tried if TCP's is taken); [`SeedServer::local_addr`] reports it.
    ///
    /// # Errors
    /// The bind error (e.g. `AddrInUse`, `PermissionDenied` below port 1024).
    pub async fn spawn(bind: SocketAddr) -> io::Result<SeedServer> {
        let attempts = if bind.port() == 0 { BIND_ATTEMPTS } else { 1 };
        let mut attempt = 0;
        let (udp, tcp, local_addr) = loop {
            attempt += 1;
            let udp = UdpSocket::bind(bind).await?;
            let local_addr = udp.local_addr()?;
            match TcpListener::bind(local_addr).await {
                Ok(tcp) => break (udp, tcp, local_addr),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < attempts => {
                    tracing::debug!(%local_addr, "seed server: TCP port taken, trying another");
                }
                Err(e) => return Err(e),
            }
        };

        let records = Records::default();
        let answered = Arc::new(AtomicU64::new(0));
        let handler = SeedHandler {
            records: records.clone(),
            answered: answered.clone(),
        };
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, TCP_RESPONSE_BUFFER);
        tracing::info!(%local_addr, "seed DNS server listening (udp+tcp)");
        Ok(SeedServer {
            local_addr,
            records,
            answered,
            server,
        })
    }

    /// The bound address (UDP and TCP share it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets the addresses of `name` (case-insensitive, trailing dot optional), replacing
    /// earlier ones. An empty list makes the name exist with no addresses (NODATA).
    /// Duplicate addresses are dropped; the order is kept.
    pub fn set_records(&self, name: &str, ips: Vec<IpAddr>) {
        let mut unique = Vec::with_capacity(ips.len());
        for ip in ips {
            if !unique.contains(&ip) {
                unique.push(ip);
            }
        }
        self.records
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(normalize(name), unique);
    }

    /// Removes `name`: it answers NXDOMAIN again. Returns whether it was known.
    pub fn remove(&self, name: &str) -> bool {
        self.records
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&normalize(name))
            .is_some()
    }

    /// Number of queries answered since the start (every response sent, NXDOMAIN and errors
    /// included; UDP and TCP together).
    pub fn query_count(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops accepting queries and waits until the serving tasks have ended.
    pub async fn shutdown(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            tracing::debug!(%error, "seed server shutdown");
        }
    }
}

impl Drop for SeedServer {
    fn drop(&mut self) {
        // Dropping `server` aborts its tasks as well; cancelling first lets them close
        // their sockets cleanly.
        self.server.shutdown_token().cancel();
    }
}

/// The request handler: answers from the shared record table.
struct SeedHandler {
    records: Records,
    answered: Arc<AtomicU64>,
}

/// What to answer to one request.
struct Answer {
    code: ResponseCode,
    authoritative: bool,
    records: Vec<Record>,
}

impl Answer {
    fn error(code: ResponseCode) -> Self {
        Self {
            code,
            authoritative: false,
            records: Vec::new(),
        }
    }
}

impl SeedHandler {
    fn answer(&self, request: &Request) -> Answer {
        if request.metadata.message_type != MessageType::Query {
            return Answer::error(ResponseCode::FormErr);
        }
        if request.metadata.op_code != OpCode::Query {
            return Answer::error(ResponseCode::NotImp);
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Answer::error(ResponseCode::BADVERS);
        }
        let Ok(info) = request.request_info() else {
            return Answer::error(ResponseCode::FormErr);
        };
        let query = info.query;
        if query.query_class() != DNSClass::IN {
            return Answer::error(ResponseCode::Refused);
        }
        let key = normalize(&query.name().to_string());
        let records = self
            .records
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(ips) = records.get(&key) else {
            let suffix = format!(".{key}");
            let parent_of_known = key.is_empty() || records.keys().any(|k| k.ends_with(&suffix));
            let code = if parent_of_known {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            return Answer {
                code,
                authoritative: true,
                records: Vec::new(),
            };
        };
        // Answer with the name as asked (case preserved, for 0x20 case randomisation).
        let owner = query.original().name().clone();
        let qtype = query.query_type();
        let answers = ips
            .iter()
            .filter_map(|ip| match (ip, qtype) {
                (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(RData::A(A(*v4))),
                (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                    Some(RData::AAAA(AAAA(*v6)))
                }
                _ => None,
            })
            .map(|rdata| Record::from_rdata(owner.clone(), ANSWER_TTL_SECS, rdata))
            .collect();
        Answer {
            code: ResponseCode::NoError,
            authoritative: true,
            records: answers,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for SeedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let answer = self.answer(request);
        let response_edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().max(512));
            edns.set_version(0);
            edns
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = answer.authoritative;
        metadata.response_code = answer.code;
        let response = MessageResponseBuilder::new(&request.queries, response_edns.as_ref()).build(
            metadata,
            answer.records.iter(),
            iter::empty(),
            iter::empty(),
            iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                info
            }
            Err(error) => {
                tracing::warn!(%error, src = %request.src(), "seed server: sending a response failed");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
