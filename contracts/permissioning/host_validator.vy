# pragma version ~=0.4.3
"""
@title Host and enode id validation for the enode registry
@custom:contract-name host_validator
@license MIT
@notice Stateless helpers shared by `EnodeIngress` (what Besu calls)
        and `EnodeRules` (what admins and nodes call). A host is
        one of:
          - an IPv4 literal: four decimal octets 0..255, no leading
            zeros ("010" is ambiguous: octal or decimal);
          - an IPv6 literal without brackets, zone id or embedded
            IPv4: 1..8 groups of 1..4 hex digits, at most one "::";
          - a DNS name: labels of 1..63 characters from [a-z0-9-]
            joined by ".", no label starting or ending with "-",
            no empty label (so no leading, trailing or double dot),
            253 characters at most, and a top-level label that is
            not all digits. Lower case only: names are compared by
            hash on chain, so one spelling per name.
        IP literals are also returned as the 16 bytes Besu's v1
        permissioning uses (IPv4 as the IPv4-mapped ::ffff:a.b.c.d).
"""

HOST_INVALID: constant(uint8) = 0
HOST_DNS: constant(uint8) = 1
HOST_IPV4: constant(uint8) = 2
HOST_IPV6: constant(uint8) = 3

MAX_HOST_LENGTH: constant(uint256) = 253
MAX_LABEL_LENGTH: constant(uint256) = 63
# Whole 32-byte words: what a host read word by word from calldata fills.
PADDED_LENGTH: constant(uint256) = 288
ENODE_HEX_LENGTH: constant(uint256) = 128

# secp256k1 field prime: an enode id is an uncompressed public key (x || y).
SECP256K1_P: constant(uint256) = 115792089237316195423570985008687907853269984665640564039457584007908834671663
IPV4_MAPPED_PREFIX: constant(uint256) = 281470681743360  # 0xffff << 32

ASCII_ZERO: constant(uint256) = 48
ASCII_NINE: constant(uint256) = 57
ASCII_LOWER_A: constant(uint256) = 97
ASCII_LOWER_F: constant(uint256) = 102
ASCII_LOWER_Z: constant(uint256) = 122
ASCII_UPPER_A: constant(uint256) = 65
ASCII_UPPER_F: constant(uint256) = 70
ASCII_DOT: constant(uint256) = 46
ASCII_COLON: constant(uint256) = 58
ASCII_HYPHEN: constant(uint256) = 45


@internal
@pure
def _char(data: Bytes[PADDED_LENGTH], index: uint256) -> uint256:
    # One 32-byte load of a zero-padded buffer: cheaper than a one-byte slice.
    return convert(extract32(data, index), uint256) >> 248


@internal
@pure
def _hex_value(c: uint256) -> uint256:
    """
    @dev The value of one hex digit, or 16 if `c` is not one.
    """
    if c >= ASCII_ZERO and c <= ASCII_NINE:
        return c - ASCII_ZERO
    if c >= ASCII_LOWER_A and c <= ASCII_LOWER_F:
        return c - ASCII_LOWER_A + 10
    if c >= ASCII_UPPER_A and c <= ASCII_UPPER_F:
        return c - ASCII_UPPER_A + 10
    return 16


@internal
@pure
def _parse_ipv4(data: Bytes[PADDED_LENGTH], n: uint256) -> (bool, uint256):
    """
    @dev Dotted quad -> (ok, 32-bit value).
    """
    if n < 7 or n > 15:
        return False, 0
    value: uint256 = 0
    octet: uint256 = 0
    digits: uint256 = 0
    parts: uint256 = 0
    first_digit: uint256 = 0
    for i: uint256 in range(16):
        if i > n:
            break
        c: uint256 = ASCII_DOT
        if i < n:
            c = self._char(data, i)
        if c == ASCII_DOT:
            # An empty octet, or a multi-digit one with a leading zero, is refused.
            if digits == 0 or (digits > 1 and first_digit == 0):
                return False, 0
            parts += 1
            if parts > 4:
                return False, 0
            value = (value << 8) | octet
            octet = 0
            digits = 0
        elif c >= ASCII_ZERO and c <= ASCII_NINE:
            if digits == 0:
                first_digit = c - ASCII_ZERO
            digits += 1
            octet = octet * 10 + c - ASCII_ZERO
            if digits > 3 or octet > 255:
                return False, 0
        else:
            return False, 0
    if parts != 4:
        return False, 0
    return True, value


@internal
@pure
def _parse_ipv6(data: Bytes[PADDED_LENGTH], n: uint256) -> (bool, uint256):
    """
    @dev RFC 4291 text form (no embedded IPv4, no zone) -> (ok, 128-bit value).
    """
    if n < 2 or n > 39:
        return False, 0
    groups: uint256[8] = empty(uint256[8])
    count: uint256 = 0
    gap: uint256 = 9  # index of the group the "::" stands before; 9 = none
    i: uint256 = 0
    if self._char(data, 0) == ASCII_COLON:
        if self._char(data, 1) != ASCII_COLON:
            return False, 0
        gap = 0
        i = 2
    if i < n:
        for _: uint256 in range(8):
            # One group of 1..4 hex digits.
            group: uint256 = 0
            digits: uint256 = 0
            for _d: uint256 in range(5):
                if i >= n:
                    break
                h: uint256 = self._hex_value(self._char(data, i))
                if h == 16:
                    break
                group = group * 16 + h
                digits += 1
                i += 1
            if digits == 0 or digits > 4 or count == 8:
                return False, 0
            groups[count] = group
            count += 1
            if i == n:
                break
            if self._char(data, i) != ASCII_COLON:
                return False, 0
            i += 1
            if i == n:
                return False, 0  # a trailing single ":"
            if self._char(data, i) == ASCII_COLON:
                if gap != 9:
                    return False, 0  # a second "::"
                gap = count
                i += 1
                if i == n:
                    break
        if i != n:
            return False, 0
    if gap == 9 and count != 8:
        return False, 0
    if gap != 9 and count > 7:
        return False, 0
    value: uint256 = 0
    position: uint256 = 0
    for j: uint256 in range(8):
        if j == count:
            break
        position = j
        if gap != 9 and j >= gap:
            position = j + 8 - count
        value |= groups[j] << (16 * (7 - position))
    return True, value


@internal
@pure
def _is_dns_name(data: Bytes[PADDED_LENGTH], n: uint256) -> bool:
    label_length: uint256 = 0
    label_all_digits: bool = True
    previous: uint256 = ASCII_DOT
    for i: uint256 in range(MAX_HOST_LENGTH + 1):
        if i > n:
            break
        c: uint256 = ASCII_DOT
        if i < n:
            c = self._char(data, i)
        if c == ASCII_DOT:
            if label_length == 0 or previous == ASCII_HYPHEN:
                return False
            label_length = 0
            if i == n:
                return not label_all_digits  # the top-level label is not numeric
            label_all_digits = True
        else:
            is_digit: bool = c >= ASCII_ZERO and c <= ASCII_NINE
            is_letter: bool = c >= ASCII_LOWER_A and c <= ASCII_LOWER_Z
            if not (is_digit or is_letter or c == ASCII_HYPHEN):
                return False
            if c == ASCII_HYPHEN and label_length == 0:
                return False
            if not is_digit:
                label_all_digits = False
            label_length += 1
            if label_length > MAX_LABEL_LENGTH:
                return False
        previous = c
    return False


@internal
@pure
def _classify_host(host: String[MAX_HOST_LENGTH]) -> (uint8, bytes16):
    """
    @dev (kind, 16-byte address) of `host`; the address is zero unless
         the kind is an IP literal.
    """
    return self._classify_padded(concat(convert(host, Bytes[MAX_HOST_LENGTH]), empty(bytes32)), len(host))


@internal
@pure
def _classify_padded(data: Bytes[PADDED_LENGTH], n: uint256) -> (uint8, bytes16):
    """
    @dev `_classify_host` of the first `n` bytes of `data` (n <= 253); the
         bytes after them are never read, and at least 32 of them exist, so
         each character is one 32-byte load.
    """
    if n == 0 or n > MAX_HOST_LENGTH:
        return HOST_INVALID, empty(bytes16)
    has_colon: bool = False
    digits_and_dots_only: bool = True
    for i: uint256 in range(MAX_HOST_LENGTH):
        if i == n:
            break
        c: uint256 = self._char(data, i)
        if c == ASCII_COLON:
            has_colon = True
        elif c != ASCII_DOT and (c < ASCII_ZERO or c > ASCII_NINE):
            digits_and_dots_only = False
    ok: bool = False
    value: uint256 = 0
    if has_colon:
        ok, value = self._parse_ipv6(data, n)
        if ok:
            return HOST_IPV6, convert(convert(value, uint128), bytes16)
        return HOST_INVALID, empty(bytes16)
    if digits_and_dots_only:
        # Never a DNS name: its top-level label would be numeric.
        ok, value = self._parse_ipv4(data, n)
        if ok:
            return HOST_IPV4, convert(convert(value | IPV4_MAPPED_PREFIX, uint128), bytes16)
        return HOST_INVALID, empty(bytes16)
    if self._is_dns_name(data, n):
        return HOST_DNS, empty(bytes16)
    return HOST_INVALID, empty(bytes16)


@internal
@pure
def _parse_enode_hex(enode_id: String[ENODE_HEX_LENGTH]) -> (bool, bytes32, bytes32):
    """
    @dev The 128 hex digits Besu passes (no 0x) -> (ok, high, low).
    """
    data: Bytes[ENODE_HEX_LENGTH] = convert(enode_id, Bytes[ENODE_HEX_LENGTH])
    if len(data) != ENODE_HEX_LENGTH:
        return False, empty(bytes32), empty(bytes32)
    high: uint256 = 0
    low: uint256 = 0
    # Four 32-byte words, one character per byte: far cheaper than a slice per character.
    for word_index: uint256 in range(4):
        word: uint256 = convert(extract32(data, word_index * 32), uint256)
        value: uint256 = 0
        for j: uint256 in range(32):
            c: uint256 = (word >> (248 - (j << 3))) & 255
            # Digits are 0x30..0x39; letters of either case fold to 0x61..0x66 with | 0x20.
            folded: uint256 = c | 32
            if c >= ASCII_ZERO and c <= ASCII_NINE:
                value = (value << 4) | (c - ASCII_ZERO)
            elif folded >= ASCII_LOWER_A and folded <= ASCII_LOWER_F:
                value = (value << 4) | (folded - ASCII_LOWER_A + 10)
            else:
                return False, empty(bytes32), empty(bytes32)
        if word_index < 2:
            high = (high << 128) | value
        else:
            low = (low << 128) | value
    return True, convert(high, bytes32), convert(low, bytes32)


@internal
@pure
def _is_public_key(enode_high: bytes32, enode_low: bytes32) -> bool:
    """
    @dev True if (x, y) = (high, low) is a point on secp256k1.
    """
    x: uint256 = convert(enode_high, uint256)
    y: uint256 = convert(enode_low, uint256)
    if x == 0 or x >= SECP256K1_P or y >= SECP256K1_P:
        return False
    x_cubed: uint256 = uint256_mulmod(uint256_mulmod(x, x, SECP256K1_P), x, SECP256K1_P)
    return uint256_mulmod(y, y, SECP256K1_P) == uint256_addmod(x_cubed, 7, SECP256K1_P)


@internal
@pure
def _enode_key(enode_high: bytes32, enode_low: bytes32) -> bytes32:
    """
    @dev The registry key; its low 20 bytes are the node key's address.
    """
    return keccak256(concat(enode_high, enode_low))
