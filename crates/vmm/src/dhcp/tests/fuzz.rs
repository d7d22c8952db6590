//! Fuzzed frames never panic the server.

use super::*;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

fn fuzz_seeds() -> Vec<Vec<u8>> {
    let mut with_id = request_selecting(ROUTER, CLIENT_IP);
    with_id
        .opts_mut()
        .insert(DhcpOption::ClientIdentifier(vec![1, 2, 3, 4, 5, 6, 7]));
    with_id
        .opts_mut()
        .insert(DhcpOption::Hostname("guest".to_string()));
    let mut inform = client_msg(MessageType::Inform);
    inform.set_ciaddr(CLIENT_IP);
    vec![
        broadcast_frame(&discover()),
        broadcast_frame(&with_id),
        broadcast_frame(&request_init_reboot(CLIENT_IP)),
        renew_frame(CLIENT_IP),
        frame_with(&inform.to_vec().unwrap(), CLIENT_MAC, CLIENT_IP, ROUTER),
    ]
}

#[test]
fn fuzzed_frames_never_panic() {
    let seeds = fuzz_seeds();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut server = server();
    let mut replies = 0;
    for round in 0..30_000 {
        let mut frame = seeds[round % seeds.len()].clone();
        match rng.below(7) {
            // Cut anywhere.
            0 => frame.truncate(rng.below(frame.len() + 1)),
            // Flip bytes anywhere; checksums mostly catch it.
            1 => {
                for _ in 0..=rng.below(8) {
                    let at = rng.below(frame.len());
                    frame[at] ^= rng.byte() | 1;
                }
            }
            // Flip bytes in the headers, with lengths and checksum redone.
            2 => {
                for _ in 0..=rng.below(4) {
                    let at = IP_OFF + rng.below(DHCP_OFF - IP_OFF);
                    frame[at] ^= rng.byte() | 1;
                }
                if rng.below(2) == 0 {
                    fix_up(&mut frame);
                }
            }
            // Flip bytes in the DHCP message, consistently framed.
            3 => {
                for _ in 0..=rng.below(8) {
                    let at = DHCP_OFF + rng.below(frame.len() - DHCP_OFF);
                    frame[at] = rng.byte();
                }
                fix_up(&mut frame);
            }
            // Shorten the DHCP message, consistently framed.
            4 => {
                frame.truncate(DHCP_OFF + rng.below(frame.len() - DHCP_OFF + 1));
                fix_up(&mut frame);
            }
            // Random option TLVs after a valid message type.
            5 => {
                frame.truncate(DHCP_OFF + 240);
                frame.extend_from_slice(&[53, 1, 1 + u8::try_from(rng.below(8)).unwrap()]);
                for _ in 0..rng.below(400) {
                    frame.push(rng.byte());
                }
                fix_up(&mut frame);
            }
            // Random option TLVs with plausible lengths.
            _ => {
                frame.truncate(DHCP_OFF + 240);
                frame.extend_from_slice(&[53, 1, 3]);
                for _ in 0..rng.below(20) {
                    let code = [50, 53, 54, 55, 61, 12, 57, 81, 82, 94, 118, 121][rng.below(12)];
                    let len = rng.below(9);
                    frame.push(code);
                    frame.push(u8::try_from(len).unwrap());
                    for _ in 0..len {
                        frame.push(rng.byte());
                    }
                }
                if rng.below(2) == 0 {
                    frame.push(255);
                }
                fix_up(&mut frame);
            }
        }
        let claimed = is_dhcp_to_server(&frame);
        if let Some(reply) = server.handle_frame(&frame) {
            assert!(claimed, "answered a frame the datapath would forward");
            parse_reply(&reply);
            replies += 1;
        }
    }
    // The loop must reach the DHCP layer, not only bounce off checksums.
    assert!(replies > 1_000, "only {replies} replies");
}
