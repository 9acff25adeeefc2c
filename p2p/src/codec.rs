//! A `request_response` codec that frames one CBOR value per stream direction.
//!
//! Frame: a 4-byte big-endian length, then that many bytes of CBOR produced by
//! [`dsdn_protocols::codec`]. The length is checked against the per-direction cap *before*
//! any byte of the body is read, so a peer cannot make us buffer more than the cap.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;
use serde::{de::DeserializeOwned, Serialize};

/// CBOR request/response codec with byte caps for requests and responses.
#[derive(Debug)]
pub struct CborCodec<Req, Resp> {
    request_cap: usize,
    response_cap: usize,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> CborCodec<Req, Resp> {
    /// A codec refusing requests over `request_cap` and responses over `response_cap` bytes.
    pub fn new(request_cap: usize, response_cap: usize) -> Self {
        Self {
            request_cap,
            response_cap,
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> Clone for CborCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self::new(self.request_cap, self.response_cap)
    }
}

async fn read_frame<T, V>(io: &mut T, cap: usize) -> io::Result<V>
where
    T: AsyncRead + Unpin + Send,
    V: DeserializeOwned,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the cap of {cap}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    dsdn_protocols::codec::decode(&buf, cap)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_frame<T, V>(io: &mut T, value: &V, cap: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    V: Serialize,
{
    let bytes = dsdn_protocols::codec::encode(value, cap)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl<Req, Resp> request_response::Codec for CborCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + Sync + 'static,
    Resp: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.request_cap).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_cap).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.request_cap).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.response_cap).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use request_response::Codec;

    #[tokio::test]
    async fn frames_round_trip_and_caps_apply_before_reading() {
        let proto = StreamProtocol::new("/test/1");
        let mut codec = CborCodec::<Vec<u8>, String>::new(64, 64);
        let mut buf = Cursor::new(Vec::new());
        codec
            .write_request(&proto, &mut buf, vec![1, 2, 3])
            .await
            .unwrap();
        let mut rd = Cursor::new(buf.into_inner());
        assert_eq!(
            codec.read_request(&proto, &mut rd).await.unwrap(),
            vec![1, 2, 3]
        );

        // A length prefix over the cap is refused without reading the body.
        let mut huge = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let err = codec.read_request(&proto, &mut huge).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        // Garbage within the cap is an error, not a panic.
        let mut garbage = Cursor::new([&3u32.to_be_bytes()[..], &[0xff, 0xff, 0xff]].concat());
        assert!(codec.read_response(&proto, &mut garbage).await.is_err());
    }
}
