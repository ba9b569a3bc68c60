//! Raw PDUs on a TCP stream, for tests that play the SMSC's end.

use tokio::{io::AsyncReadExt, net::TcpStream};

/// One PDU off the wire: (command_id, command_status, sequence_number).
pub async fn read_pdu(stream: &mut TcpStream) -> (u32, u32, u32) {
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).await.expect("header");
    let word = |i: usize| u32::from_be_bytes(header[i..i + 4].try_into().expect("4 octets"));
    let mut body = vec![0u8; word(0) as usize - 16];
    stream.read_exact(&mut body).await.expect("body");
    (word(4), word(8), word(12))
}

/// A PDU as an SMSC would send it.
pub fn pdu(command_id: u32, status: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut out = ((16 + body.len()) as u32).to_be_bytes().to_vec();
    for word in [command_id, status, sequence] {
        out.extend(word.to_be_bytes());
    }
    out.extend(body);
    out
}
