"""Word lists the rules use: categories, relations, verbs, and what is not worth keeping.

Category lexicons are regular-expression fragments matched on word boundaries against the
rewritten statement; each hit scores one point for its category (multi-word terms score
two, because they are more specific). Ties go to the earlier category in `CATEGORY_ORDER`.
"""

from __future__ import annotations

import re

from memsync.model import Category

__all__ = [
    "CATEGORY_ORDER",
    "DEMONYMS",
    "FAMILY",
    "IRREGULAR_PAST",
    "NOT_NAMES",
    "RELATIONS",
    "category_scores",
    "is_past",
    "third_person",
    "word_set",
]


def word_set(words: str) -> frozenset[str]:
    """The whitespace-separated words of `words` as a set."""
    return frozenset(words.split())


_LEXICON: dict[Category, str] = {
    Category.PRIVATE: r"""
        secret\w* confidential private(?:ly)? between\ us don'?t\ tell doesn'?t\ know
        not\ tell gay lesbian bisexual queer transgender trans come\ out coming\ out
        came\ out closet religio\w* catholic muslim christian jewish hindu buddhist
        atheist church mosque synagogue temple pray\w* ramadan lent court\ date court
        lawsuit lawyer\ about arrest\w* police immigration asylum affair
        without\ (?:the\ )?(?:boss|employer|anyone|parents)\ know\w*
    """,
    Category.HEALTH: r"""
        allerg\w* diagnos\w* diabet\w* asthma anxiety depress\w* adhd autis\w* therap\w*
        medicat\w* meds doctor gp dentist dental pain injur\w* sprain\w* ankle knee
        sleep\w* insomnia tired vegetarian vegan pescatarian diet gluten celiac coeliac
        lactose intoleran\w* dairy alcohol sober drinks? drinking coffee\w* caffeine
        exercis\w* gym workouts? running runs?\ (?:about\ )?\d+\ ?km marathon half\ marathon
        5k 10k trail\ run yoga
        pilates weights lift\w* fitness weight pregnan\w* hay\ fever colou?rblind blind deaf
        disabilit\w* eating\ disorder recovery metformin cetirizine antihistamine pills?
        heights phobia smok\w* nutrition calories keto fasting bed wakes?\ up wake\ up
        health\w* ill sick flu surgery blood\ pressure cholesterol migraine\w* nervous
        parkinson'?s cancer physio\w* swollen eat\w* meat
    """,
    Category.FINANCE: r"""
        money sav(?:e|es|ing|ings) budget\w* salary earn\w* income paid pay\w* rent mortgage
        loan debt credit invest\w* index\ funds? stocks? shares crypto tax\w* receipts?
        invoice\w* bank account spend\w* cost\w* price\w* expensive cheap afford\w* deposit
        pension insurance bills? risk\ averse finance\w* financial £\S* \$\S* €\S*
        \d+k(?!\ (?:words|steps|subscribers|followers|views|run|trail))
        euros? dollars? pounds? per\ month a\ month fixed\ rate interest\ rate
    """,
    Category.TRAVEL: r"""
        travel\w* trips? flights? fly(?:ing)? flew airport layovers? window\ seat aisle\ seat
        hotels? holidays? vacations? visit\w* abroad passport visa tour\w* road\ trip
        ring\ road itinerar\w* backpack\w* destinations? been\ to beach cruise overseas
        get\ around airbnb hostel jet\ lag packing weekend\ in
    """,
    Category.LEARNING: r"""
        learn\w* stud(?:y|ying|ies|ied) students? course\w* class\w* lessons? bootcamp degree
        master'?s phd university college exams? thesis papers? research tutor\w* practi[cs]\w*
        level beginner fluent duolingo self-taught teaching\ (?:myself|themselves)
        certificat\w* sheet\ music lab supervisor homework assignment\w* dissertation
        delf ielts toefl gre gmat textbook curriculum semester fingerstyle
    """,
    Category.PRODUCTIVITY: r"""
        answers? repl(?:y|ies) respon\w* bullet\ points? format\w* paragraphs? emojis?
        metric units notes tasks? to-?do calendar emails? meetings? deep\ work focus\w*
        routine schedul\w* workflow tools? obsidian notion todoist jira trello slack
        grafana asana procrastinat\w* night\ owl morning\ person productiv\w* time\ ?zones?
        diffs? edit\w* spelling tone outlin\w* prose sprints? the\ assistant apologi[sz]\w*
        charts? british\ spelling concise verbose summar\w* phrasing
        writes?\ best works?\ best most\ productive late\ at\ night early\ bird
    """,
    Category.CAREER: r"""
        jobs? work\w* career\w* compan\w* employer boss manag\w* colleagues? co-?workers?
        team office promot\w* interview\w* hired fired contract\w* freelanc\w* clients?
        startup positions? role nurse teach\w* developer dev engineer\w* accountant lawyer
        paralegal designer illustrator analyst scientist consultant consulting firefighter
        retail construction marketing product\ manager cv resume cover\ letter retired
        self-employed business on\ call on-call runbook migrat\w* shifts? deadline
        profession\w* hospital\ admin\w* administration nonprofit fintech industry
        conference giving\ a\ talk talk\ on presentation backend frontend data\ scien\w*
        coding programmer
        move\ into switch\w*\ into transition\w*\ into remote hybrid work\ from\ home
        final\ round
    """,
    Category.RELATIONSHIPS: r"""
        wife husband partner\w* girlfriend boyfriend spouse fianc\w* daughters? sons? kids?
        child children baby toddler mum mom mother father dad parents? brothers? sisters?
        siblings? grand\w* aunt uncle cousin niece nephew friends? best\ friend roommate
        flatmate neighbou?r\w* dogs? cats? pets? puppy kitten greyhound wedding married
        birthday broke\ up break\ ?up divorc\w* dating carer family in-laws twins
        anniversary relationship guests? hosting dinner\ party dinner\ for
    """,
    Category.INTERESTS: r"""
        lov(?:e|es|ed) lik(?:e|es|ed) enjoy\w* hat(?:e|es|ed) dislik\w* can'?t\ stand
        cannot\ stand hobb\w* fan favou?rite music
        guitar piano books? read\w* novel\w* sci-?fi fantasy films? movies? games? board\ games
        climb\w* hik\w* bak\w* cook\w* sourdough football soccer league sports? astronomy
        telescope\w* garden\w* newsletter paint\w* photograph\w* podcasts? audiobooks?
        anime for\ fun spicy mushrooms food book\ club cheese chocolate wine beer bread
        crumb loaves knit\w* chess video\ games gaming rust\ cli side\ project camping
    """,
    Category.IDENTITY: r"""
        named name\ is years\ old pronouns they/them she/her he/him born from grew\ up
        lives? living live\ in moved\ to moving\ (?:house|from|to) native nationality
        citizen hometown left-handed right-handed bilingual countryside city is\ from
        british american german french ukrainian brazilian
    """,
}

# Earlier wins ties: specific, sensitive categories before broad ones.
CATEGORY_ORDER: tuple[Category, ...] = (
    Category.PRIVATE,
    Category.HEALTH,
    Category.FINANCE,
    Category.TRAVEL,
    Category.LEARNING,
    Category.PRODUCTIVITY,
    Category.CAREER,
    Category.RELATIONSHIPS,
    Category.INTERESTS,
    Category.IDENTITY,
)


def _compile(spec: str) -> re.Pattern[str]:
    # Longer terms first, so "book club" wins over "book".
    terms = sorted(re.split(r"(?<!\\)\s+", spec.strip()), key=len, reverse=True)
    # "\ " in the spec is an escaped space inside one term.
    return re.compile(r"(?<![\w'])(?:" + "|".join(terms) + r")(?![\w'])", re.IGNORECASE)


_COMPILED: dict[Category, re.Pattern[str]] = {c: _compile(s) for c, s in _LEXICON.items()}


def category_scores(text: str) -> dict[Category, float]:
    """Points per category for `text` (categories with no hit are left out)."""
    scores: dict[Category, float] = {}
    for cat, pattern in _COMPILED.items():
        total = 0.0
        for m in pattern.finditer(text):
            total += 2.0 if " " in m.group(0) else 1.0
        if total:
            scores[cat] = total
    return scores


RELATIONS: frozenset[str] = word_set(
    """wife husband partner girlfriend boyfriend fiance fiancé fiancee fiancée spouse
    daughter son kid kids child children baby toddler mum mom mother mama dad father papa
    parents brother sister siblings sibling grandma grandmother grandpa grandfather
    grandparents grandson granddaughter aunt uncle cousin niece nephew friend roommate
    flatmate housemate neighbor neighbour boss manager colleague coworker co-worker
    supervisor therapist doctor dog cat puppy kitten pet in-laws stepson stepdaughter
    stepmom stepdad twins team landlord teacher mentor"""
)
# Capitalised words that are not names ("my son And ...", "I'm Really ...").
NOT_NAMES: frozenset[str] = word_set(
    """I The A An And But So My Our It This That There Here Just Also Not Very Really Going
    Back From Home Ok Okay Is Was Has Who"""
)
# Relations worth a "Has a <relation> named <Name>" memory of their own.
FAMILY: frozenset[str] = word_set(
    """wife husband partner girlfriend boyfriend fiance fiancé fiancee fiancée spouse
    daughter son kid child baby toddler mum mom mother dad father brother sister grandma
    grandmother grandpa grandfather aunt uncle cousin niece nephew friend dog cat puppy
    kitten pet stepson stepdaughter"""
)
FEMALE: frozenset[str] = word_set(
    """wife girlfriend fiancee fiancée daughter mum mom mother mama sister grandma
    grandmother aunt niece stepdaughter stepmom"""
)
MALE: frozenset[str] = word_set(
    """husband boyfriend fiance fiancé son dad father papa brother grandpa grandfather uncle
    nephew stepson stepdad"""
)

DEMONYMS: frozenset[str] = word_set(
    """american british english scottish welsh irish canadian australian german french
    spanish italian portuguese brazilian mexican argentinian colombian chilean peruvian
    dutch belgian swiss austrian swedish norwegian danish finnish icelandic polish czech
    slovak hungarian romanian bulgarian greek turkish ukrainian russian belarusian
    lithuanian latvian estonian serbian croatian bosnian slovenian albanian indian
    pakistani bangladeshi chinese japanese korean vietnamese thai filipino indonesian
    malaysian singaporean nigerian kenyan ghanaian ethiopian egyptian moroccan algerian
    tunisian south israeli iranian iraqi syrian lebanese saudi emirati jordanian
    palestinian afghan new kiwi catholic muslim christian jewish hindu buddhist atheist
    vegan vegetarian"""
)

IRREGULAR_PAST: frozenset[str] = word_set(
    """was were had did got went made took saw came left bought broke began became brought
    built caught chose drove ate fell felt found flew forgot gave grew heard held kept
    knew lost met paid put ran said sold sent spent sat slept spoke stood taught thought
    told understood woke won wrote read let set cut hurt quit shut lent bet lay rode sang
    swam threw wore"""
)
MODALS: frozenset[str] = word_set("can cannot could should would will might may must shall")
_IRREGULAR_3SG: dict[str, str] = {
    "be": "is",
    "am": "is",
    "are": "is",
    "have": "has",
    "do": "does",
    "go": "goes",
    "don't": "does not",
    "can't": "cannot",
    "won't": "will not",
    "haven't": "has not",
    "aren't": "is not",
    "wasn't": "was not",
    "weren't": "was not",
    "didn't": "did not",
    "couldn't": "could not",
    "wouldn't": "would not",
    "shouldn't": "should not",
}


def is_past(word: str) -> bool:
    """Whether `word` looks like a simple past form ("went", "booked"; not "need")."""
    low = word.lower()
    return low in IRREGULAR_PAST or (
        len(low) > 3 and low.endswith("ed") and not low.endswith("eed")
    )


def third_person(verb: str) -> str:
    """The third-person singular present of a base-form verb ("love" -> "loves")."""
    low = verb.lower()
    if low in _IRREGULAR_3SG:
        return _IRREGULAR_3SG[low]
    if low in MODALS or is_past(low):
        return verb
    if re.search(r"(?:s|sh|ch|x|z|o)$", low):
        return verb + "es"
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + "s"
