// An SMSC not written by us: the npm `smpp` package's server (node-smpp 0.5.1),
// for sluice's interoperability tests.
//
//   node server.js PORT_OR_0 [--receipts=tlv|text|both]
//
// Listens on 127.0.0.1 and prints one JSON line per event on stdout:
//   {"listening":PORT}                                  once it listens
//   {"bind":{"command","system_id","interface_version","status"}}
//   {"submit":{"source_addr","destination_addr","data_coding","esm_class",
//              "registered_delivery","short_message_hex","message_payload_hex",
//              "message_id"}}
//   {"receipt":{"message_id","destination_addr","sequence_number"}}
//   {"deliver_sm_resp":{"sequence_number","command_status"}}
//
// Accepts bind_transceiver / bind_transmitter / bind_receiver for any
// system_id; when NPM_SMSC_PASSWORD is set, a bind with another password is
// answered ESME_RINVPASWD. Answers submit_sm with incrementing message ids
// ("1", "2", ...) and, for a submit that asked for a delivery receipt
// (registered_delivery & 0x03 != 0), sends a deliver_sm receipt (esm_class 4)
// shortly after (NPM_SMSC_RECEIPT_DELAY_MS, default 50) on the session that
// submitted it, or on another bound receiver when that one is a transmitter.
// --receipts: tlv = receipted_message_id + message_state TLVs only (with an
// empty short_message), text = the classic "id:.. stat:DELIVRD .." text only,
// both (default) = both.
'use strict';

const smpp = require('smpp');

const args = process.argv.slice(2);
const port = Number(args[0] || 0);
let receipts = 'both';
for (const arg of args.slice(1)) {
  const m = /^--receipts=(tlv|text|both)$/.exec(arg);
  if (!m) {
    process.stderr.write(`usage: node server.js PORT_OR_0 [--receipts=tlv|text|both], not ${arg}\n`);
    process.exit(2);
  }
  receipts = m[1];
}
const expectedPassword = process.env.NPM_SMSC_PASSWORD;
const receiptDelay = Number(process.env.NPM_SMSC_RECEIPT_DELAY_MS || 50);

// Keep the exact bytes of short_message / message_payload next to the
// library's decoded text, so the log can show what arrived on the wire.
const decodeMessage = smpp.filters.message.decode;
smpp.filters.message.decode = function (value, skipUdh) {
  const decoded = decodeMessage.call(this, value, skipUdh);
  if (Buffer.isBuffer(value) && decoded && typeof decoded === 'object') {
    decoded.raw = Buffer.from(value);
  }
  return decoded;
};

function log(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function rawHex(field) {
  if (field === undefined || field === null) return null;
  if (Buffer.isBuffer(field)) return field.toString('hex');
  if (field.raw) return field.raw.toString('hex');
  return null;
}

// YYMMDDhhmm in UTC.
function smppDate(d) {
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes());
}

let nextMessageId = 1;
const sessions = new Set(); // bound sessions: {session, canReceive}

function receiverFor(preferred) {
  if (preferred.bound && preferred.canReceive && !preferred.closed) return preferred;
  for (const s of sessions) {
    if (s.bound && s.canReceive && !s.closed) return s;
  }
  return null;
}

function sendReceipt(origin, submit, messageId, submitted) {
  const target = receiverFor(origin);
  if (!target) {
    log({ error: `no bound receiver for the receipt of ${messageId}` });
    return;
  }
  const sent = smppDate(submitted);
  const done = smppDate(new Date());
  const text = Buffer.from(
    `id:${messageId} sub:001 dlvrd:001 submit date:${sent} done date:${done} stat:DELIVRD err:000 text:`,
    'latin1',
  );
  const options = {
    source_addr_ton: submit.dest_addr_ton,
    source_addr_npi: submit.dest_addr_npi,
    source_addr: submit.destination_addr,
    dest_addr_ton: submit.source_addr_ton,
    dest_addr_npi: submit.source_addr_npi,
    destination_addr: submit.source_addr,
    esm_class: 0x04,
    data_coding: 0,
    short_message: receipts === 'tlv' ? Buffer.alloc(0) : text,
  };
  if (receipts !== 'text') {
    options.receipted_message_id = messageId;
    options.message_state = 2; // DELIVERED
  }
  const pdu = new smpp.PDU('deliver_sm', options);
  target.session.send(pdu, (resp) => {
    log({ deliver_sm_resp: { sequence_number: resp.sequence_number, command_status: resp.command_status } });
  }, (sentPdu) => {
    log({ receipt: { message_id: messageId, destination_addr: submit.destination_addr, sequence_number: sentPdu.sequence_number } });
  });
}

const server = smpp.createServer((session) => {
  const state = { session, bound: false, canReceive: false, closed: false };
  sessions.add(state);
  session.on('close', () => {
    state.closed = true;
    sessions.delete(state);
  });
  session.on('error', (e) => {
    log({ error: String(e && e.message ? e.message : e) });
    state.closed = true;
    sessions.delete(state);
  });

  const bind = (canReceive) => (pdu) => {
    let status = smpp.ESME_ROK;
    if (state.bound) {
      status = smpp.ESME_RALYBND;
    } else if (expectedPassword !== undefined && pdu.password !== expectedPassword) {
      status = smpp.ESME_RINVPASWD;
    }
    log({ bind: { command: pdu.command, system_id: pdu.system_id, interface_version: pdu.interface_version, status } });
    session.send(pdu.response({ command_status: status, system_id: 'npm-smsc' }));
    if (status === smpp.ESME_ROK) {
      state.bound = true;
      state.canReceive = canReceive;
    }
  };
  session.on('bind_transceiver', bind(true));
  session.on('bind_transmitter', bind(false));
  session.on('bind_receiver', bind(true));

  session.on('submit_sm', (pdu) => {
    if (!state.bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const messageId = String(nextMessageId++);
    log({
      submit: {
        source_addr: pdu.source_addr,
        destination_addr: pdu.destination_addr,
        data_coding: pdu.data_coding,
        esm_class: pdu.esm_class,
        registered_delivery: pdu.registered_delivery,
        short_message_hex: rawHex(pdu.short_message) || '',
        message_payload_hex: rawHex(pdu.message_payload),
        message_id: messageId,
        at_ms: Date.now(),
      },
    });
    session.send(pdu.response({ message_id: messageId }));
    if (pdu.registered_delivery & 0x03) {
      const submitted = new Date();
      setTimeout(() => sendReceipt(state, pdu, messageId, submitted), receiptDelay);
    }
  });

  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    state.bound = false;
    session.send(pdu.response(), () => session.close());
  });
  session.on('pdu', (pdu) => {
    if (pdu.command === 'unknown') session.send(pdu.response());
  });
});

server.on('error', (e) => {
  process.stderr.write(`npm smsc: ${e.message}\n`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  log({ listening: server.address().port });
});
