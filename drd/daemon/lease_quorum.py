"""Asking the three sites' voters about a protection group's lease: every peer over
HTTP, this site's own voter last, and what a majority of their answers proves."""

import asyncio

import aiohttp

from drd.api.schemas import LeaseAskIn, LeaseReleaseIn, LeaseVoteOut
from drd.api.tokens import TokenFileError, read_secret_file
from drd.daemon.lease_voter import LeaseVoter
from drd.domain.lease import Answer, Ask, majority
from drd.domain.site_config import PeerConfig, SiteConfig


async def ask_all(session: aiohttp.ClientSession, config: SiteConfig, voter: LeaseVoter,
                  group: str, epoch: int) -> list[LeaseVoteOut]:
    """Every voter's answer to this site asking for `group` at `epoch`: its own voter's
    first in the list, though asked last.

    This site promises itself the lease only when its peers' grants make that
    promise the deciding vote of a majority. A candidate that promised itself first
    and then lost the vote would keep that promise: it would count itself the holder
    of an epoch nobody else granted, refuse the real holder's renewals, and tell it
    that a newer epoch exists.
    """
    site = config.site.name
    ask = LeaseAskIn(group=group, candidate=site, epoch=epoch)
    answers = await asyncio.gather(*(post_to_voter(session, config, peer, "/v1/peers/lease",
                                                   ask) for peer in config.peers))
    granted = sum(1 for vote in answers if vote.answer == Answer.GRANTED.value)
    if granted + 1 < majority(len(answers) + 1):
        mine = voter.view(group, Answer.REFUSED.value,
                          f"not asked: {granted} of {len(answers)} peers granted, too few "
                          f"for a majority")
        return [mine, *answers]
    own = await voter.answer(group, Ask(site, epoch))
    return [voter.view(group, own.answer.value, own.reason), *answers]


async def post_to_voter(session: aiohttp.ClientSession, config: SiteConfig, peer: PeerConfig,
                        path: str, body: LeaseAskIn | LeaseReleaseIn) -> LeaseVoteOut:
    """POST to the peer's voter; a refusal saying why when it does not answer within a
    round."""
    timeout = aiohttp.ClientTimeout(total=config.takeover.lease_renew_seconds)
    try:
        token = read_secret_file(peer.token_file)
        async with session.post(str(peer.url).rstrip("/") + path,
                                data=body.model_dump_json(), timeout=timeout,
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": "application/json"}) as response:
            raw = await response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}: {raw[:200]!r}")
            return LeaseVoteOut.model_validate_json(raw)
    except (TimeoutError, aiohttp.ClientError, ValueError, TokenFileError) as error:
        return LeaseVoteOut(site=peer.name, answer=Answer.REFUSED.value,
                            reason=f"no answer: {error or type(error).__name__}",
                            holder=None, epoch=None, remaining_seconds=None)


def newer_epoch_held(votes: list[LeaseVoteOut], epoch: int, site: str) -> LeaseVoteOut | None:
    """A vote naming another holder at an epoch above `epoch` that a majority of the voters
    promised alike, so that holder provably won it; None otherwise.

    One voter's word is not enough: a candidate whose takeover the quorum refused may still
    name itself (an older daemon promised itself before asking), and a holder that fenced
    itself on that word would leave the group with no primary at all.
    """
    newer = [v for v in votes if v.epoch is not None and v.epoch > epoch
             and v.holder not in (None, site)]
    for vote in sorted(newer, key=lambda v: v.epoch or 0, reverse=True):
        alike = sum(1 for v in votes if (v.holder, v.epoch) == (vote.holder, vote.epoch))
        if alike >= majority(len(votes)):
            return vote
    return None
